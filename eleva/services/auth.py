"""Accounts and login sessions: register, log in, rotate, log out, end sessions."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from flask import current_app
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from sqlalchemy import Select, Subquery, bindparam, func, select, update

from eleva.database import read_only_request
from eleva.errors import Forbidden, Unauthorized, ValidationFailed
from eleva.extensions import db
from eleva.models import LoginSession, User, utcnow
from eleva.security import (
    TokenPair,
    burn_password_check,
    hash_cost,
    hash_password,
    issue_tokens,
    password_problems,
    verify_password,
)
from eleva.services.db import HotSelect, commit_unique

log = logging.getLogger("eleva.auth")

BAD_CREDENTIALS = "Invalid login or password."
USER_UNIQUE_FIELDS = {
    "uq_users_email_lower": ("email", "email address"),
    "uq_users_username_lower": ("username", "username"),
}


def _rounds() -> int:
    return current_app.config["BCRYPT_ROUNDS"]


def check_new_password(
    password: str, *, username: str, email: str, field: str = "password"
) -> None:
    problems = password_problems(password, username=username, email=email)
    if problems:
        raise ValidationFailed(problems[0], errors={"json": {field: problems}})


def register(*, email: str, username: str, password: str, full_name: str | None = None) -> User:
    email = email.lower()
    check_new_password(password, username=username, email=email)
    user = User(
        email=email,
        username=username,
        full_name=full_name,
        password_hash=hash_password(password, rounds=_rounds()),
    )
    db.session.add(user)
    commit_unique(USER_UNIQUE_FIELDS)
    return user


def find_by_login(login: str) -> User | None:
    """A user by email or username, case-insensitively (one indexed query)."""
    login = login.strip().lower()
    column = User.email if "@" in login else User.username
    return db.session.scalar(select(User).where(func.lower(column) == login))


def login(*, login: str, password: str) -> TokenPair:
    user = find_by_login(login)
    if user is None:
        burn_password_check(password, _rounds())
        raise Unauthorized(BAD_CREDENTIALS)
    if not verify_password(password, user.password_hash):
        raise Unauthorized(BAD_CREDENTIALS)
    _lock_unchanged(user, password)
    # Only after the right password: otherwise 403 would reveal the account exists.
    if not user.is_active:
        raise Forbidden("This account is deactivated.")
    if hash_cost(user.password_hash) < _rounds():
        user.password_hash = hash_password(password, rounds=_rounds())
    return _start_session(user)


def _lock_unchanged(user: User, password: str) -> None:
    """Re-read the user under a share lock until the session is committed.

    The password was checked against a hash read ~200 ms earlier. A password change
    or deactivation committed meanwhile must win: the lock makes it wait for this
    login (whose new session it then ends) or makes this login see its result.
    """
    checked_hash = user.password_hash
    db.session.refresh(user, with_for_update={"read": True})
    if user.password_hash != checked_hash and not verify_password(password, user.password_hash):
        db.session.rollback()
        raise Unauthorized(BAD_CREDENTIALS)


def _start_session(user: User) -> TokenPair:
    now = utcnow()
    session = LoginSession(
        id=uuid.uuid4(),
        user_id=user.id,
        refresh_jti=str(uuid.uuid4()),
        created_at=now,
        expires_at=now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
    )
    db.session.add(session)
    db.session.commit()
    return issue_tokens(
        user_id=user.id,
        session_id=str(session.id),
        refresh_jti=session.refresh_jti,
        session_expires_at=session.expires_at,
        now=now,
    )


def _session_id(claims: dict[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(claims["sid"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a read-only request: the user's row as it was authenticated.

    Every column of ``User`` but the password hash, read by a ``HotSelect``: a GET only
    serialises the caller, and an ORM entity (identity map, instance state, a
    transaction to end) costs several times the query itself (bench/README.md).
    """

    id: int
    email: str
    username: str
    full_name: str | None
    bio: str | None
    is_active: bool
    profile_visibility: str
    show_email: bool
    picture_key: str | None
    subjects_active: int
    subjects_archived: int
    created_at: datetime
    updated_at: datetime

    @property
    def privacy(self) -> dict[str, Any]:
        return {"profile_visibility": self.profile_visibility, "show_email": self.show_email}


def _live_session_of_user(query: Select) -> Select:
    return query.join(LoginSession, LoginSession.user_id == User.id).where(
        User.id == bindparam("user_id"),
        User.is_active.is_(True),
        LoginSession.id == bindparam("session_id"),
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > bindparam("now"),
    )


_PRINCIPAL_COLUMNS = tuple(User.__table__.c[field.name] for field in fields(Principal))
PRINCIPAL_WIDTH = len(_PRINCIPAL_COLUMNS)

# Built once: constructing a select() costs more than running it on every request.
_PRINCIPAL_OF_LIVE_SESSION = _live_session_of_user(select(*_PRINCIPAL_COLUMNS))
_AUTHENTICATED_PRINCIPAL = HotSelect(_PRINCIPAL_OF_LIVE_SESSION, Principal)
_AUTHENTICATED_USER = _live_session_of_user(select(User))


def session_params(claims: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters of the authentication query for a token's claims, or None when
    the claims cannot name a session (no live session can match them)."""
    session_id = _session_id(claims)
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    if session_id is None:
        return None
    return {"user_id": user_id, "session_id": session_id, "now": utcnow()}


def authenticated_user(claims: dict[str, Any]) -> User | Principal | None:
    """The user a token speaks for, if its session is live and the user active.

    One query, whatever the token type: it is the revocation check and the user load.
    A read-only request gets a ``Principal``; any other the ORM ``User``, to change.
    """
    params = session_params(claims)
    if params is None:
        return None
    if read_only_request():
        return _AUTHENTICATED_PRINCIPAL.first(**params)
    return db.session.scalar(_AUTHENTICATED_USER, params)


def authenticated_caller_subquery() -> Subquery:
    """The authentication query as a subquery, for a read that carries its own check.

    Its columns are a ``Principal``'s (``PRINCIPAL_WIDTH`` of them, in order); it has
    one row when the session is live and the user active, else none. Its parameters
    are ``session_params``'. A hot read that LEFT JOINs its rows to it returns the
    caller, the revocation check and its data in one round trip: no row at all means
    the session is not live (eleva.subjects.routes, the list).
    """
    return _PRINCIPAL_OF_LIVE_SESSION.subquery("caller")


def rotate(claims: dict[str, Any]) -> TokenPair:
    """Consume the presented refresh token and hand out a new pair.

    The swap of ``refresh_jti`` is one conditional UPDATE, so of two concurrent uses of
    one token exactly one wins. Any other use of a consumed token ends the session.
    """
    session_id = _session_id(claims)
    now = utcnow()
    new_jti = str(uuid.uuid4())
    row = db.session.execute(
        update(LoginSession)
        .where(
            LoginSession.id == session_id,
            LoginSession.refresh_jti == claims["jti"],
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .values(refresh_jti=new_jti, refreshed_at=now)
        .returning(LoginSession.expires_at)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        revoked = _revoke(LoginSession.id == session_id, reason="reuse", now=now)
        db.session.commit()
        if revoked:
            log.warning(
                "refresh token reuse: session %s of user %s revoked", session_id, claims["sub"]
            )
        raise Unauthorized(
            "This refresh token was already used. The session has ended; log in again."
        )
    db.session.commit()
    return issue_tokens(
        user_id=int(claims["sub"]),
        session_id=str(session_id),
        refresh_jti=new_jti,
        session_expires_at=row.expires_at,
        now=now,
    )


def logout(claims: dict[str, Any], refresh_token: str | None = None) -> None:
    """End the caller's session, and the session of ``refresh_token`` if it is theirs."""
    session_ids = {_session_id(claims)}
    if refresh_token:
        other = _refresh_claims(refresh_token)
        if other is not None and other.get("sub") == claims["sub"]:
            session_ids.add(_session_id(other))
    session_ids.discard(None)
    _revoke(LoginSession.id.in_(session_ids), reason="logout")
    db.session.commit()


def _refresh_claims(token: str) -> dict[str, Any] | None:
    try:
        claims = decode_token(token)
    except (JWTExtendedException, PyJWTError):
        return None
    return claims if claims.get("type") == "refresh" else None


def end_sessions(user_id: int, *, reason: str, keep: uuid.UUID | None = None) -> int:
    """Revoke the user's live sessions (but ``keep``). The caller commits."""
    condition = LoginSession.user_id == user_id
    if keep is not None:
        condition = condition & (LoginSession.id != keep)
    return _revoke(condition, reason=reason)


def current_session_id(claims: dict[str, Any]) -> uuid.UUID | None:
    return _session_id(claims)


def _revoke(condition: Any, *, reason: str, now: datetime | None = None) -> int:
    result = db.session.execute(
        update(LoginSession)
        .where(condition, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
