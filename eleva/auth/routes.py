"""/api/v1/auth — registration, login, token rotation and logout."""

from __future__ import annotations

import contextlib

from flask.views import MethodView

from eleva.auth.schemas import LoginSchema, LogoutSchema, TokenPairSchema
from eleva.core.errors import Unauthorized
from eleva.core.tokens import TokenClaims
from eleva.http import ratelimit
from eleva.http.api import Blueprint
from eleva.http.auth import read_token
from eleva.http.ratelimit import limiter
from eleva.services import auth
from eleva.services.auth import CurrentUser
from eleva.users.schemas import PrivateUserSchema, UserCreateSchema

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
    def post(self, data):
        """Log in with email or username; start a session and get a token pair.

        An unknown login and a wrong password get the same 401. A deactivated account
        gets 403 (only with the right password). Attempts are limited per client address
        and per account (its email and username share one counter, which wrong passwords
        at ``PUT /users/me/password`` and ``DELETE /users/me`` also count against): 429
        with ``Retry-After``; 503 when the counters cannot be reached.
        """
        return auth.login(**data)


@blp.route("/refresh")
class Refresh(MethodView):
    # Counted before the token is checked: every attempt with one token costs.
    @limiter.limit(ratelimit.refresh_limit, key_func=ratelimit.bearer_token)
    @blp.refresh_token_required
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, token: TokenClaims):
        """Trade the refresh token (as Bearer) for a new access and refresh token.

        Each refresh token works once. Presenting one that was already used ends the
        whole login session: every token descended from that login stops working.
        """
        return auth.rotate(token.user_id, token.session_id, token.jti)


@blp.route("/logout")
class Logout(MethodView):
    @blp.login_required
    @blp.arguments(LogoutSchema, required=False)
    @blp.response(204)
    def post(self, me: CurrentUser, data):
        """End this login session: its access and refresh tokens stop working.

        Other sessions of the user are untouched. ``refresh_token``, if given and the
        caller's, ends the session it belongs to as well.
        """
        sessions = {me.session_id}
        # Not a valid refresh token: only this session ends.
        with contextlib.suppress(Unauthorized):
            if data.get("refresh_token"):
                sessions.add(read_token(data["refresh_token"], "refresh").session_id)
        auth.logout(me.id, sessions)
