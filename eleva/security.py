"""Passwords and tokens.

Passwords: bcrypt over a keyed pre-hash. bcrypt reads at most 72 bytes (bcrypt 5 raises
beyond), so the password is first reduced with HMAC-SHA256 keyed by the hash's own bcrypt
salt and base64-encoded (44 bytes, no NUL): long passwords are never truncated, and the
pre-hash cannot be reused across hashes ("password shucking").

Tokens: flask-jwt-extended with the contract's claims. Every token belongs to a login
session (claim ``sid``); a request is authenticated by one query that loads the user
through a live session. Every token failure answers 401 in the error shape.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import bcrypt
import flask_jwt_extended
from flask import Response, current_app, g, request
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.exceptions import (
    InvalidHeaderError,
    NoAuthorizationError,
    UserLookupError,
    WrongTokenError,
)
from flask_jwt_extended.tokens import _decode_jwt
from jwt import ExpiredSignatureError, get_unverified_header

from eleva.errors import error_response

if TYPE_CHECKING:
    from eleva.models import User
    from eleva.services.auth import Principal

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


# -- passwords ---------------------------------------------------------------------------


def _normalise(password: str) -> bytes:
    # NFKC: the same password typed on two keyboards gives the same bytes (NIST 800-63B).
    return unicodedata.normalize("NFKC", password).encode("utf-8", "surrogatepass")


def _prehash(password: str, salt: bytes) -> bytes:
    digest = hmac.new(salt, _normalise(password), hashlib.sha256).digest()
    return base64.b64encode(digest)


def hash_password(password: str, *, rounds: int) -> str:
    salt = bcrypt.gensalt(rounds)
    return bcrypt.hashpw(_prehash(password, salt), salt).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    hashed = password_hash.encode("ascii")
    salt = hashed[:29]  # "$2b$" + cost + "$" + 22 characters of salt
    try:
        return bcrypt.checkpw(_prehash(password, salt), hashed)
    except ValueError:  # a malformed stored hash is a failed check, not a crash
        return False


def hash_cost(password_hash: str) -> int:
    return int(password_hash.split("$")[2])


@cache
def _dummy_hash(rounds: int) -> str:
    return hash_password("not-a-real-password-only-burns-time", rounds=rounds)


def burn_password_check(password: str, rounds: int) -> None:
    """Spend what a real check costs, so an unknown login is as slow as a wrong password."""
    verify_password(password, _dummy_hash(rounds))


@cache
def common_passwords() -> frozenset[str]:
    """The most common passwords (≈20,000), lower-cased.

    Data: the list Django ships (BSD-3), itself from Royce Williams' 2017 compilation.
    """
    data = resources.files("eleva.data").joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


def password_problems(password: str, *, username: str | None, email: str | None) -> list[str]:
    """Why a new password is refused, or an empty list. Length is the schema's job."""
    folded = password.strip().casefold()
    problems = []
    if folded in common_passwords():
        problems.append("This password is too common.")
    if username and folded == username.casefold():
        problems.append("The password cannot be your username.")
    if email and (folded == email.casefold() or folded == email.split("@")[0].casefold()):
        problems.append("The password cannot be your email address.")
    return problems


# -- tokens ------------------------------------------------------------------------------


class JWTManager(flask_jwt_extended.JWTManager):
    """flask-jwt-extended, verifying each token once per worker instead of three times
    per request.

    The stock manager decodes a token's claims and header unverified (so that a key
    callback may choose the key) before the verified decode, and reads a dozen settings
    through ``current_app`` each time. Eléva has one HS256 key: one verified decode, with
    the settings read once per app. PyJWT takes ~60 µs per decode here (its
    per-character base64url checks), and a client presents the same access token on
    every request for up to 30 minutes, so the claims of a verified token are kept
    (``VerifiedTokens``) and a later request with the very same token string only has its
    expiry checked again. Same checks, same errors: tests/test_auth.py covers every
    token failure. Relies on flask-jwt-extended's private ``_decode_jwt``: pinned in
    requirements.txt.
    """

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict:
        settings = current_app.extensions.get("eleva.jwt_decode")
        if settings is None:
            settings = current_app.extensions["eleva.jwt_decode"] = _decode_settings()
        verified: VerifiedTokens = settings["verified"]
        if not allow_expired and csrf_value is None:
            claims = verified.get(encoded_token)
            if claims is not None:
                return claims
        kwargs = {**settings["kwargs"], "csrf_value": csrf_value, "encoded_token": encoded_token}
        try:
            claims = _decode_jwt(**kwargs, allow_expired=allow_expired)
        except ExpiredSignatureError as exc:
            # The expired-token loader is given the header and claims, as upstream does.
            exc.jwt_header = get_unverified_header(encoded_token)  # type: ignore[attr-defined]
            exc.jwt_data = _decode_jwt(**kwargs, allow_expired=True)  # type: ignore[attr-defined]
            raise
        if not allow_expired:
            verified.put(encoded_token, claims)
        return claims


def _decode_settings() -> dict[str, Any]:
    return {
        "kwargs": {
            "algorithms": jwt_config.decode_algorithms,
            "audience": jwt_config.decode_audience,
            "identity_claim_key": jwt_config.identity_claim_key,
            "issuer": jwt_config.decode_issuer,
            "leeway": jwt_config.leeway,
            "secret": jwt_config.decode_key,
            "verify_aud": jwt_config.decode_audience is not None,
            "verify_sub": jwt_config.verify_sub,
        },
        "verified": VerifiedTokens(leeway=jwt_config.leeway),
    }


class VerifiedTokens:
    """Claims of tokens whose signature and claims were verified, by exact token string.

    A hit is only returned while the token is unexpired (PyJWT's own rule, leeway
    included); its signature, ``nbf`` and ``iat`` cannot change. Revocation is not
    cached: it is the database's answer on every request. Bounded: the oldest entry goes
    first when full (~1 KB each).
    """

    def __init__(self, *, leeway: float, maxsize: int = 4096) -> None:
        self._claims: dict[str, dict] = {}
        self._leeway = leeway
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, token: str) -> dict | None:
        claims = self._claims.get(token)
        if claims is None:
            return None
        if claims["exp"] <= time.time() - self._leeway:
            self._claims.pop(token, None)
            return None
        return dict(claims)  # a copy: the caller may keep or change its claims

    def put(self, token: str, claims: dict) -> None:
        if not isinstance(claims.get("exp"), int | float):
            return
        with self._lock:
            while len(self._claims) >= self._maxsize:
                del self._claims[next(iter(self._claims))]
            self._claims[token] = dict(claims)

    def __len__(self) -> int:
        return len(self._claims)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (a scheme name, not a secret)


def issue_tokens(
    *, user_id: int, session_id: str, refresh_jti: str, session_expires_at: datetime, now: datetime
) -> TokenPair:
    """A fresh pair for one session; neither token outlives the session."""
    remaining = session_expires_at - now
    access_ttl = min(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"], remaining)
    access_ttl = max(access_ttl, timedelta(seconds=1))
    identity = str(user_id)
    access = create_access_token(
        identity, additional_claims={"sid": session_id}, expires_delta=access_ttl
    )
    refresh = create_refresh_token(
        identity,
        additional_claims={"sid": session_id, "jti": refresh_jti},
        expires_delta=max(remaining, timedelta(seconds=1)),
    )
    return TokenPair(access, refresh, int(access_ttl.total_seconds()))


# -- the caller of a request -------------------------------------------------------------

ACCESS_REQUIRED = "Only non-refresh tokens are allowed"  # flask-jwt-extended's reasons
REFRESH_REQUIRED = "Only refresh tokens are allowed"


@dataclass(frozen=True)
class Caller:
    user: User | Principal
    claims: dict[str, Any]


def authenticate(kind: Literal["access", "refresh"] = "access", *, deferred: bool = False) -> None:
    """Check the request's bearer token and load the user it speaks for.

    flask-jwt-extended's ``verify_jwt_in_request``, narrowed to Eléva's one case (a
    bearer token in the Authorization header) so that the token is decoded once: the
    stock path decodes its header a second time, unverified. Every failure raises
    flask-jwt-extended's or PyJWT's exception, which its error handlers pass to the
    loaders below: a 401 in the error shape.

    ``deferred`` (read-only requests): only the token is checked here; the view makes
    the session check with its own read and passes the user it found to ``identify``
    (``Blueprint.login_required``'s ``deferred``).
    """
    from eleva.services import auth as auth_service  # services import this module

    claims = decode_token(_bearer_token())
    if claims.get("type") != kind:
        raise WrongTokenError(ACCESS_REQUIRED if kind == "access" else REFRESH_REQUIRED)
    g.eleva_claims = claims
    if not deferred:
        # One query: the user, through a live session of theirs (the revocation check).
        identify(auth_service.authenticated_user(claims))


def identify(user: User | Principal | None) -> Caller:
    """Make ``user``, found through a live session of the token's, the request's caller;
    None (no live session, or an inactive user) answers 401."""
    claims = token_claims()
    if user is None:
        g.eleva_caller = None  # checked, and refused: Blueprint.login_required checks no more
        raise UserLookupError("no live session or active user for the token", {}, claims)
    g.eleva_caller = caller = Caller(user, claims)
    return caller


def token_claims() -> dict[str, Any]:
    """The verified claims of this request's token. Whether its session is live is
    ``identify``'s answer: use ``current_caller`` for anything but keys and lookups."""
    claims = g.get("eleva_claims")
    if claims is None:
        raise RuntimeError("token_claims() outside a request that requires a token")
    return claims


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "").strip()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":  # RFC 9110: the scheme is case-insensitive
        raise NoAuthorizationError("no bearer token")
    token = token.strip()
    if not token or " " in token:
        raise InvalidHeaderError("expected 'Authorization: Bearer <token>'")
    return token


def current_caller() -> Caller:
    """Who made this request; only inside a view that requires a token."""
    caller = g.get("eleva_caller")
    if caller is None:
        raise RuntimeError("current_caller() outside an authenticated request")
    return caller


def current_user() -> User:
    return current_caller().user


def current_claims() -> dict[str, Any]:
    return current_caller().claims


def _token_error(message: str) -> Response:
    return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})


def register_jwt_callbacks(jwt: JWTManager) -> None:
    """Make every token problem a 401 in the error shape (defaults: 401/422 with "msg")."""

    @jwt.user_lookup_error_loader
    def session_ended(_header: dict, _claims: dict) -> Response:
        return _token_error("The session has ended or the account is inactive.")

    @jwt.unauthorized_loader
    def missing_token(_reason: str) -> Response:
        return _token_error("Missing or malformed Authorization header (expected: Bearer <token>).")

    @jwt.invalid_token_loader
    def invalid_token(reason: str) -> Response:
        # Wrong-type errors reach this loader too; their reason is worth passing on.
        if reason == ACCESS_REQUIRED:
            return _token_error("An access token is required, not a refresh token.")
        if reason == REFRESH_REQUIRED:
            return _token_error("A refresh token is required, not an access token.")
        return _token_error("Invalid token.")

    @jwt.expired_token_loader
    def expired_token(_header: dict, claims: dict) -> Response:
        return _token_error(f"The {claims.get('type', 'access')} token has expired.")

    @jwt.revoked_token_loader
    def revoked_token(_header: dict, _claims: dict) -> Response:
        return _token_error("The token has been revoked.")

    @jwt.needs_fresh_token_loader
    def needs_fresh(_header: dict, _claims: dict) -> Response:
        return _token_error("A fresh login is required.")

    @jwt.token_verification_failed_loader
    def verification_failed(_header: dict, _claims: dict) -> Response:
        return _token_error("Invalid token.")
