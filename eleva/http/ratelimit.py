"""Rate-limit keys and limits (Flask-Limiter), as the contract lists them.

Limits are read from the config at request time, so each app instance honours its own.
Keys are namespaced so that, say, a login name can never collide with an address. With
the counters out of reach (Redis down or hung), a limited route answers 503: it fails closed.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from eleva.core.errors import Unauthorized
from eleva.http import auth
from eleva.http.errors import error_response
from eleva.services import auth as auth_service

# The one counter of an account, which every route that checks its password counts
# against: a login by email, by username (any spelling), and a password given to
# PUT /users/me/password or DELETE /users/me.
ACCOUNT_SCOPE = "account"
PASSWORD_CHECK_SCOPE = "password-check"  # noqa: S105 (a counter name)
# One budget per user for the routes that start a document upload (multipart, direct).
DOCUMENT_UPLOAD_SCOPE = "document-upload"
NOTE_WRITE_SCOPE = "note-write"


def _too_many_requests(limit: RequestLimit) -> Response:
    # Retry-After here, on the 429 only: Flask-Limiter's own headers (off in config.py)
    # would put it on every response of a limited route, 200s included.
    retry_after = max(1, math.ceil(limit.reset_at - time.time()))
    return error_response(
        429,
        f"Too many requests ({limit.limit}). Retry later.",
        headers={"Retry-After": str(retry_after)},
    )


# The client address is request.remote_addr, which ProxyFix rewrites from
# X-Forwarded-For for exactly TRUSTED_PROXY_COUNT hops (eleva.http.web).
limiter = Limiter(key_func=get_remote_address, on_breach=_too_many_requests)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _json_body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def client_address() -> str:
    return f"addr:{get_remote_address()}"


def login_account() -> str:
    # Per account, whichever address the attempts come from, and whichever of its
    # names (email or username, in any spelling) they use.
    login = _json_body().get("login")
    if not isinstance(login, str):
        return "login:"  # refused by the schema (422) right after
    return auth_service.login_counter(login)


def current_account() -> str:
    # Under login_required (which runs first): the caller's account, the login's counter.
    user_id = auth.current_user_id()
    return auth_service.account_counter(user_id) if user_id is not None else "account:"


def current_user_id() -> str:
    # Under login_required (which runs first): the authenticated caller.
    return f"user:{auth.current_user_id()}"


def changes_no_email() -> bool:
    """Exempt a PATCH of the profile from the email-change limit unless it sets one."""
    return "email" not in _json_body()


def login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def register_limit() -> str:
    return current_app.config["RATELIMIT_REGISTER"]


def refresh_limit() -> str:
    return current_app.config["RATELIMIT_REFRESH"]


def upload_limit() -> str:
    return current_app.config["RATELIMIT_UPLOAD"]


def email_in_body() -> str:
    # The address as the lookup normalises it: no spelling escapes its counter.
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{_digest(auth_service.login_key(email) if isinstance(email, str) else '')}"


def password_forgot_limit() -> str:
    return current_app.config["RATELIMIT_PASSWORD_FORGOT"]


def verify_resend_limit() -> str:
    return current_app.config["RATELIMIT_VERIFY_RESEND"]


def password_check_limit() -> str:
    return current_app.config["RATELIMIT_PASSWORD_CHECK"]


def email_change_limit() -> str:
    return current_app.config["RATELIMIT_EMAIL_CHANGE"]


def refresh_credential() -> str:
    """What the refresh limit counts: the login session of this request's refresh token
    (Bearer, the scheme in any case and any spacing, or the refresh cookie), so every
    token of a session and every spelling of its header share one budget; a token that
    does not verify counts on its own value."""
    if "Authorization" in request.headers:
        try:
            token = auth.bearer_token()
        except Unauthorized:
            return f"token:{_digest(request.headers['Authorization'])}"
    else:
        token = request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"], "")
    try:
        return f"session:{auth.read_token(token, 'refresh').session_id}"
    except Unauthorized:
        return f"token:{_digest(token)}"


def note_write_limit() -> str:
    return current_app.config["RATELIMIT_NOTE_WRITE"]


def counters_reachable() -> bool:
    """Whether the rate-limit counters answer (for readiness; bounded by the socket
    timeouts of RATELIMIT_STORAGE_OPTIONS)."""
    return bool(limiter.storage.check())
