"""Password hashing and the rules a new password must meet.

Everything is judged after NFKC, as it is hashed; a password of any length counts whole
(it is pre-hashed before bcrypt).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import unicodedata
from functools import cache
from importlib import resources

import bcrypt

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


def normalise(password: str) -> str:
    # NFKC: the same password typed on two keyboards is the same password (NIST 800-63B).
    return unicodedata.normalize("NFKC", password)


def _prehash(password: str, salt: bytes) -> bytes:
    # bcrypt reads at most 72 bytes (bcrypt 5 raises beyond), so the password is first
    # reduced with HMAC-SHA256 keyed by the hash's own bcrypt salt, base64-encoded (44
    # bytes, no NUL): a long password is never truncated, and the pre-hash cannot be
    # reused across hashes ("password shucking").
    # surrogatepass: any str can be a login attempt, lone surrogates included.
    data = normalise(password).encode("utf-8", "surrogatepass")
    return base64.b64encode(hmac.new(salt, data, hashlib.sha256).digest())


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


def warm_up(rounds: int) -> None:
    """Load the common-password list and the dummy hash before the first request."""
    common_passwords()
    _dummy_hash(rounds)


@cache
def common_passwords() -> frozenset[str]:
    """The most common passwords (≈20,000), lower-cased.

    Data: the list Django ships (BSD-3), itself from Royce Williams' 2017 compilation.
    """
    data = resources.files("eleva.core").joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


def password_problems(password: str, *, username: str | None, email: str | None) -> list[str]:
    """Why a new password is refused, or an empty list. Length is the schema's job."""
    folded = normalise(password).strip().casefold()
    problems = []
    if folded in common_passwords():
        problems.append("This password is too common.")
    if username and folded == normalise(username).casefold():
        problems.append("The password cannot be your username.")
    if email:
        email = normalise(email).casefold()
        if folded in (email, email.split("@")[0]):
            problems.append("The password cannot be your email address.")
    return problems
