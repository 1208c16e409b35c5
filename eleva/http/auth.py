"""Who is calling: the bearer token of a request, verified, and its user.

flask-jwt-extended issues the tokens (``eleva.services.auth``) and verifies their
signature and times (``decode_token``); :func:`eleva.core.tokens.read_claims` then
insists on the claims Eléva's tokens carry. Every failure is a 401 in the error shape.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

import jwt as pyjwt
from flask import Flask, Response, after_this_request, current_app, g, request
from flask_jwt_extended import (
    JWTManager,
    decode_token,
    get_csrf_token,
)
from flask_jwt_extended.exceptions import JWTExtendedException

from eleva.core.errors import Unauthorized
from eleva.core.tokens import InvalidClaims, TokenClaims, TokenPair, read_claims
from eleva.http.errors import error_response
from eleva.http.logs import USER_ID_KEY
from eleva.services.auth import CurrentUser, authenticated_user

jwt = JWTManager()

MISSING_TOKEN = "Missing or malformed Authorization header (expected: Bearer <token>)."  # noqa: S105
SESSION_ENDED = "The session has ended or the account is inactive."
WRONG_TYPE = {
    "access": "An access token is required, not a refresh token.",
    "refresh": "A refresh token is required, not an access token.",
}


class VerifiedTokens:
    """Claims of tokens already verified, by exact token string: a client presents the
    same access token on every request until it expires, so one verification per worker
    is enough. A hit is returned only while the token is unexpired; revocation is never
    cached (it is the database's answer on every request)."""

    def __init__(self, *, maxsize: int = 4096) -> None:
        self._claims: dict[str, TokenClaims] = {}
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, token: str, leeway: float) -> TokenClaims | None:
        claims = self._claims.get(token)
        if claims is not None and claims.expires_at <= time.time() - leeway:
            self._claims.pop(token, None)
            return None
        return claims

    def put(self, token: str, claims: TokenClaims) -> None:
        # Bounded: the oldest entry goes first.
        with self._lock:
            while len(self._claims) >= self._maxsize:
                del self._claims[next(iter(self._claims))]
            self._claims[token] = claims

    def __len__(self) -> int:
        return len(self._claims)


def verified_tokens() -> VerifiedTokens:
    cache: VerifiedTokens = current_app.extensions.setdefault(
        "eleva.verified_tokens", VerifiedTokens()
    )
    return cache


def read_token(token: str, kind: Literal["access", "refresh"]) -> TokenClaims:
    """The claims of a valid token of ``kind``, or Unauthorized."""
    cache = verified_tokens()
    claims = cache.get(token, current_app.config["JWT_DECODE_LEEWAY"])
    if claims is None:
        try:
            decode_token(token)  # signature, exp, nbf (flask-jwt-extended's settings)
            # The payload as signed, before flask-jwt-extended fills in defaults (a
            # token without "type" would become an access token).
            claims = read_claims(pyjwt.decode(token, options={"verify_signature": False}))
        except pyjwt.ExpiredSignatureError:
            raise Unauthorized(f"The {kind} token has expired.") from None
        except (pyjwt.PyJWTError, JWTExtendedException, InvalidClaims):
            raise Unauthorized("Invalid token.") from None
        cache.put(token, claims)
    if claims.type != kind:
        raise Unauthorized(WRONG_TYPE[kind])
    return claims


def bearer_token() -> str:
    header = request.headers.get("Authorization", "").strip()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # RFC 9110: the scheme is case-insensitive.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized(MISSING_TOKEN)
    return token


def authenticate() -> CurrentUser:
    """The caller of this request, from its access token and a live session."""
    claims = read_token(bearer_token(), "access")
    user = authenticated_user(claims.user_id, claims.session_id)
    if user is None:
        raise Unauthorized(SESSION_ENDED)
    g.current_user = user
    request.environ[USER_ID_KEY] = user.id  # for the access log
    return user


def authenticate_refresh() -> TokenClaims:
    """The claims of this request's refresh token, if its session is live: the Bearer
    token, or without an Authorization header the refresh cookie (CSRF-checked)."""
    if "Authorization" not in request.headers and refresh_cookie() is not None:
        claims = read_refresh_cookie()
        g.refresh_in_cookie = True
    else:
        claims = read_token(bearer_token(), "refresh")
    if authenticated_user(claims.user_id, claims.session_id) is None:
        raise Unauthorized(SESSION_ENDED)
    g.current_user_id = claims.user_id
    request.environ[USER_ID_KEY] = claims.user_id
    return claims


# -- the refresh cookie (opt-in at login, for SPAs) ----------------------------------------
#
# The cookie is HttpOnly: script cannot read the refresh token. A cross-site request
# carries the cookie but cannot read responses or set headers without CORS's consent,
# so the refresh also needs X-CSRF-Token: the csrf claim of the refresh token in the
# cookie, handed to the SPA in the login/refresh body (double submit). Every rotation
# makes a new one, and the rotated cookie's value is the only one that matches.

CSRF_MISSING = "The refresh cookie needs the X-CSRF-Token header of the last login or refresh."


def refresh_cookie() -> str | None:
    return request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"]) or None


def read_refresh_cookie() -> TokenClaims:
    token = refresh_cookie()
    csrf = request.headers.get(current_app.config["JWT_REFRESH_CSRF_HEADER_NAME"], "").strip()
    if token is None or not csrf:
        raise Unauthorized(CSRF_MISSING if token else MISSING_TOKEN)
    try:
        decode_token(token, csrf_value=csrf)  # compares in constant time
    except pyjwt.ExpiredSignatureError:
        raise Unauthorized("The refresh token has expired.") from None
    except (pyjwt.PyJWTError, JWTExtendedException):
        raise Unauthorized("Invalid token or CSRF token.") from None
    return read_token(token, "refresh")


def came_with_refresh_cookie() -> bool:
    """This request's refresh token was the cookie (answer with a cookie again)."""
    return bool(g.get("refresh_in_cookie"))


def token_answer(pair: TokenPair, *, in_cookie: bool) -> dict[str, object]:
    """The body of a login or refresh. With ``in_cookie`` the refresh token goes to the
    cookie (set on this response) and the body has its CSRF value instead."""
    body: dict[str, object] = {
        "access_token": pair.access_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
    }
    if not in_cookie:
        body["refresh_token"] = pair.refresh_token
        return body
    body["csrf_token"] = get_csrf_token(pair.refresh_token)

    @after_this_request
    def set_cookie(response: Response) -> Response:
        _set_refresh_cookie(response, pair.refresh_token, max_age=pair.refresh_expires_in)
        return response

    return body


def clear_refresh_cookie() -> None:
    """Expire the refresh cookie on this response: Max-Age=0 (the contract's) and an
    Expires in the past (flask-jwt-extended's unset_refresh_cookies sends only this)."""

    @after_this_request
    def unset(response: Response) -> Response:
        _set_refresh_cookie(response, "", max_age=0, expires=0)
        return response


def _set_refresh_cookie(
    response: Response, value: str, *, max_age: int, expires: int | None = None
) -> None:
    # Setting and clearing name the same cookie: a browser keeps a Partitioned cookie
    # apart from an unpartitioned one of the same name, so the attributes must match.
    config = current_app.config
    response.set_cookie(
        config["JWT_REFRESH_COOKIE_NAME"],
        value,
        path=config["JWT_REFRESH_COOKIE_PATH"],
        secure=config["JWT_COOKIE_SECURE"],
        httponly=True,
        samesite=config["JWT_COOKIE_SAMESITE"],
        partitioned=config["REFRESH_COOKIE_PARTITIONED"],
        max_age=max_age,
        expires=expires,
    )


def current_user_id() -> int | None:
    """The authenticated caller's id, once ``authenticate`` ran (for rate-limit keys)."""
    user: CurrentUser | None = g.get("current_user")
    return user.id if user is not None else g.get("current_user_id")


def _token_error(message: str) -> Response:
    return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})


def init_app(app: Flask) -> None:
    """flask-jwt-extended for issuing; its own failures, should any reach a request,
    answer in the error shape too (its defaults are 401/422 with ``msg``)."""
    jwt.init_app(app)
    jwt.unauthorized_loader(lambda _reason: _token_error(MISSING_TOKEN))
    jwt.invalid_token_loader(lambda _reason: _token_error("Invalid token."))
    jwt.expired_token_loader(lambda _header, _claims: _token_error("The token has expired."))
    jwt.revoked_token_loader(lambda _header, _claims: _token_error("The token has been revoked."))
    jwt.user_lookup_error_loader(lambda _header, _claims: _token_error(SESSION_ENDED))
    jwt.token_verification_failed_loader(lambda _header, _claims: _token_error("Invalid token."))
    jwt.needs_fresh_token_loader(
        lambda _header, _claims: _token_error("A fresh login is required.")
    )
