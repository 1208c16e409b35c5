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
from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import JWTManager, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException

from eleva.core.errors import Unauthorized
from eleva.core.tokens import InvalidClaims, TokenClaims, read_claims
from eleva.http.errors import error_response
from eleva.services.auth import CurrentUser, authenticated_user

jwt = JWTManager()

MISSING_TOKEN = "Missing or malformed Authorization header (expected: Bearer <token>)."  # noqa: S105
SESSION_ENDED = "The session has ended or the account is inactive."
WRONG_TYPE = {
    "access": "An access token is required, not a refresh token.",
    "refresh": "A refresh token is required, not an access token.",
}


class VerifiedTokens:
    """Claims of tokens already verified, by exact token string.

    A client presents the same access token on every request for up to 30 minutes;
    verifying it once per worker saves ~150 µs a request (bench/README.md). A hit is
    returned only while the token is unexpired; revocation is never cached (it is the
    database's answer on every request). Bounded: the oldest entry goes first.
    """

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
    return user


def authenticate_refresh() -> TokenClaims:
    """The claims of this request's refresh token, if its session is live."""
    claims = read_token(bearer_token(), "refresh")
    if authenticated_user(claims.user_id, claims.session_id) is None:
        raise Unauthorized(SESSION_ENDED)
    g.current_user_id = claims.user_id
    return claims


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
