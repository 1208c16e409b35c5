"""Rate-limit keys and limits (Flask-Limiter), as the contract lists them.

Limits are read from the config at request time, so each app instance honours its own.
Keys are namespaced so that, say, a login name can never collide with an address.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from eleva.http import auth
from eleva.services.auth import login_key

# The client address is request.remote_addr, which ProxyFix rewrites from
# X-Forwarded-For for exactly TRUSTED_PROXY_COUNT hops (eleva.http.web).
limiter = Limiter(key_func=get_remote_address)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def client_address() -> str:
    return f"addr:{get_remote_address()}"


def login_name() -> str:
    # Per account, whichever address the attempts come from.
    body = request.get_json(silent=True)
    login = body.get("login") if isinstance(body, dict) else None
    return f"login:{_digest(login.strip().lower() if isinstance(login, str) else '')}"


def bearer_token() -> str:
    return f"token:{_digest(request.headers.get('Authorization', ''))}"


def current_user_id() -> str:
    # Under login_required (which runs first): the authenticated caller.
    return f"user:{auth.current_user_id()}"


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
    return f"email:{_digest(login_key(email) if isinstance(email, str) else '')}"


def password_forgot_limit() -> str:
    return current_app.config["RATELIMIT_PASSWORD_FORGOT"]


def verify_resend_limit() -> str:
    return current_app.config["RATELIMIT_VERIFY_RESEND"]


def email_change_limit() -> str:
    return current_app.config["RATELIMIT_EMAIL_CHANGE"]


def changes_no_email() -> bool:
    """exempt_when of the email-change limit: a PATCH that does not touch the email."""
    body = request.get_json(silent=True)
    return not (isinstance(body, dict) and "email" in body)


def refresh_credential() -> str:
    """The refresh token of this request, as Bearer or as the refresh cookie."""
    header = request.headers.get("Authorization")
    if header is None:
        cookie = request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"], "")
        return f"token:{_digest(cookie)}"
    return f"token:{_digest(header)}"
