"""What Eléva's tokens must say, and what the auth endpoints hand out.

A signature proves who wrote a token, not that it says what Eléva's tokens say: a
well-signed token with missing or malformed claims is refused here like a forged one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TokenType = Literal["access", "refresh"]
MAX_USER_ID = 2**31 - 1  # users.id is a PostgreSQL integer
_SUB_RE = re.compile(r"^[1-9][0-9]{0,9}$")


class InvalidClaims(ValueError):
    """A verified token whose claims are not those of an Eléva token."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_id: uuid.UUID
    jti: str
    type: TokenType
    expires_at: int  # seconds since the epoch


def read_claims(claims: Mapping[str, Any]) -> TokenClaims:
    """The claims of a verified token as Eléva reads them, or InvalidClaims."""
    # Checked even under a valid signature: a token without exp would never expire; exp as
    # a string, no type, or a sub no users.id can hold are refused like a forged token.
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        # bool is an int to Python, and PyJWT accepts numeric strings: neither is a time.
        if type(value) is not int:
            raise InvalidClaims(f"{name} must be an integer")
    kind = claims.get("type")
    if kind not in ("access", "refresh"):
        raise InvalidClaims("type must be access or refresh")
    sub, jti, sid = claims.get("sub"), claims.get("jti"), claims.get("sid")
    if not isinstance(sub, str) or not _SUB_RE.match(sub) or int(sub) > MAX_USER_ID:
        raise InvalidClaims("sub must name a user id")
    if not isinstance(jti, str) or not jti or len(jti) > 64:
        raise InvalidClaims("jti is required")
    try:
        session_id = uuid.UUID(sid) if isinstance(sid, str) else None
    except ValueError:
        session_id = None
    if session_id is None:
        raise InvalidClaims("sid must name a login session")
    return TokenClaims(int(sub), session_id, jti, kind, claims["exp"])


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (a scheme name, not a secret)
    refresh_expires_in: int = 0  # seconds: the refresh cookie's Max-Age


def new_secret() -> str:
    """A URL-safe single-use secret (256 random bits) for links sent by email."""
    return secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """What is stored of a secret: its SHA-256 (the secret is random, so no salt)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
