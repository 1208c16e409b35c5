"""/api/v1/auth — registration, login, token rotation and logout."""

from __future__ import annotations

import contextlib

from flask import request
from flask.views import MethodView

from eleva.auth.schemas import (
    EmailRevertSchema,
    EmailVerifySchema,
    ErasureCancelSchema,
    LoginSchema,
    LogoutSchema,
    MessageSchema,
    PasswordForgotSchema,
    PasswordResetSchema,
    TokenPairSchema,
)
from eleva.core.errors import Unauthorized
from eleva.core.tokens import TokenClaims
from eleva.http import ratelimit
from eleva.http.accounts import PrivateUserSchema, UserCreateSchema
from eleva.http.api import Blueprint
from eleva.http.auth import (
    came_with_refresh_cookie,
    clear_refresh_cookie,
    read_token,
    refresh_cookie,
    token_answer,
)
from eleva.http.ratelimit import limiter
from eleva.services import accounts, auth, erasure
from eleva.services.auth import CurrentUser

blp = Blueprint("auth", __name__, description="Registration, login and tokens")


@blp.route("/register")
class Register(MethodView):
    @limiter.limit(ratelimit.register_limit, key_func=ratelimit.client_address)
    @blp.arguments(UserCreateSchema)
    @blp.response(201, PrivateUserSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, data):
        """Create an account.

        The password must be 8–128 characters, not a common password, and not the
        username or email. A taken email or username (in any case) answers 409.
        """
        return auth.register(**data)


@blp.route("/login")
class Login(MethodView):
    @limiter.limit(ratelimit.login_limit, key_func=ratelimit.client_address)
    @limiter.shared_limit(
        ratelimit.login_limit, scope=ratelimit.ACCOUNT_SCOPE, key_func=ratelimit.login_account
    )
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="An unknown login and a wrong password get the same 401. A deactivated "
        "account gets 403 (only with the right password). Attempts are limited per client "
        "address and per account (its email and username share one counter, which wrong "
        "passwords at ``PUT /users/me/password`` and ``DELETE /users/me`` also count "
        "against): 429 with ``Retry-After``; 503 when the counters cannot be reached.\n\n"
        "With ``refresh_in_cookie: true`` the refresh token is set as the HttpOnly cookie "
        "``eleva_refresh`` (Path=/api/v1/auth, SameSite per REFRESH_COOKIE_SAMESITE, Secure "
        "in production or with SameSite=None, Partitioned with SameSite=None, Max-Age the "
        "refresh lifetime) and the body has ``csrf_token`` instead of ``refresh_token``."
    )
    def post(self, data):
        """Log in with email or username; start a session and get a token pair."""
        in_cookie = data.pop("refresh_in_cookie")
        pair = auth.login(**data, user_agent=request.user_agent.string, ip=request.remote_addr)
        return token_answer(pair, in_cookie=in_cookie)


@blp.route("/refresh")
class Refresh(MethodView):
    # Counted before the token is checked: every attempt with one token costs.
    @limiter.limit(ratelimit.refresh_limit, key_func=ratelimit.refresh_credential)
    @blp.refresh_token_required
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="Each refresh token works once. Presented again within "
        "REFRESH_REUSE_GRACE_SECONDS of its rotation (two tabs refreshing at once) it gets a "
        "new pair for the same session; later, it ends the whole login session: every token "
        "descended from that login stops working.\n\n"
        "Without an Authorization header the refresh token is read from the "
        "``eleva_refresh`` cookie, and the ``X-CSRF-Token`` header must be the "
        "``csrf_token`` of the last login or refresh (else 401); the answer then rotates the "
        "cookie and has a new ``csrf_token`` instead of ``refresh_token``."
    )
    def post(self, token: TokenClaims):
        """Trade the refresh token (as Bearer) for a new access and refresh token."""
        pair = auth.rotate(token.user_id, token.session_id, token.jti)
        return token_answer(pair, in_cookie=came_with_refresh_cookie())


@blp.route("/logout")
class Logout(MethodView):
    @blp.login_required
    @blp.arguments(LogoutSchema, required=False)
    @blp.response(204)
    def post(self, me: CurrentUser, data):
        """End this login session: its access and refresh tokens stop working.

        Other sessions of the user are untouched. ``refresh_token``, if given and the
        caller's, ends the session it belongs to as well; so does the refresh cookie,
        which is then cleared (Max-Age=0).
        """
        sessions = {me.session_id}
        cookie = refresh_cookie()
        # Not a valid refresh token: only this session ends.
        for token in (data.get("refresh_token"), cookie):
            with contextlib.suppress(Unauthorized):
                if token:
                    sessions.add(read_token(token, "refresh").session_id)
        if cookie is not None:
            clear_refresh_cookie()
        auth.logout(me.id, sessions)


@blp.route("/password/forgot")
class PasswordForgot(MethodView):
    @limiter.limit(ratelimit.password_forgot_limit, key_func=ratelimit.client_address)
    @limiter.limit(ratelimit.password_forgot_limit, key_func=ratelimit.email_in_body)
    @blp.arguments(PasswordForgotSchema)
    @blp.response(202, MessageSchema)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="The answer is the same, in about the same time, whether or not an "
        "account has this address; an active account gets an email with a link to "
        "``{FRONTEND_URL}/reset-password?token=…``, valid PASSWORD_RESET_MINUTES, once. "
        "Limited per client address and per email (RATELIMIT_PASSWORD_FORGOT)."
    )
    def post(self, data):
        """Ask for a password reset link by email."""
        accounts.request_password_reset(data["email"])
        return {"message": accounts.FORGOT_MESSAGE}


@blp.route("/password/reset")
class PasswordReset(MethodView):
    @blp.arguments(PasswordResetSchema)
    @blp.response(204)
    @blp.doc(
        description="Every session of the account ends, its other reset links die, its "
        'email counts as verified, and a "your password was changed" email is sent. An '
        "unknown, expired or used token is a 422 field error on ``token`` (one message for "
        "all); a password that breaks the registration rules, one on ``new_password``."
    )
    def post(self, data):
        """Set a new password with the token of a reset link."""
        accounts.reset_password(**data)


@blp.route("/email/verify")
class EmailVerify(MethodView):
    @blp.arguments(EmailVerifySchema)
    @blp.response(204)
    def post(self, data):
        """Confirm an email address with the token of a verification link.

        ``email_verified`` becomes true. A token that is unknown, expired, used, or was
        sent to an address that is no longer the account's is a 422 on ``token``.
        """
        accounts.verify_email(**data)


@blp.route("/email/revert")
class EmailRevert(MethodView):
    @blp.arguments(
        EmailRevertSchema, example={"token": "Xq3vN0bYfH2kLr8sT1uW5zA7cE9gJ4mP6oR2tV8yB0d"}
    )
    @blp.response(204)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(
        description="The token comes from ``{FRONTEND_URL}/revert-email?token=…`` in the "
        "notice an email change sends to the previous address; it works once, for "
        "EMAIL_REVERT_DAYS. The account's email becomes that address again (verified), every "
        "session of the account ends, and every password-reset link dies: sign in again, and "
        "reset the password if someone else may know it. An unknown, used or expired token "
        "is a 422 field error on ``token``. (409 only if the address was taken by hand "
        "meanwhile: no other account can register it while the link lives.)"
    )
    def post(self, data):
        """ "This wasn't me": undo an email change with the link sent to the old address."""
        accounts.revert_email(**data)


@blp.route("/email/verify/resend")
class EmailVerifyResend(MethodView):
    @blp.login_required
    @limiter.limit(ratelimit.verify_resend_limit, key_func=ratelimit.current_user_id)
    @blp.response(202, MessageSchema)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, me: CurrentUser):
        """Send a new verification link to your address, unless it is already verified.

        Limited per user (RATELIMIT_VERIFY_RESEND).
        """
        accounts.resend_verification(me.id, me.email, verified=me.email_verified)
        return {"message": RESEND_MESSAGES[me.email_verified]}


RESEND_MESSAGES = {
    False: "A new verification link is on its way to your email address.",
    True: "Your email address is already verified.",
}


@blp.route("/erasure/cancel")
class ErasureCancel(MethodView):
    @blp.arguments(ErasureCancelSchema)
    @blp.response(204)
    def post(self, data):
        """Keep your account: cancel its erasure with the token of the erasure email.

        The account is active again; its sessions stay ended (log in again). A token
        that is unknown or used, or comes after the erasure has begun (nothing is left
        to cancel then), is a 422 field error on ``token``.
        """
        erasure.cancel(**data)
