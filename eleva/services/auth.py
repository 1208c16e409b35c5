"""Accounts and login sessions: register, log in, authenticate, rotate, log out."""

from __future__ import annotations

import hashlib
import logging
import unicodedata
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import bindparam, func, select, update

from eleva.core.devices import device_label
from eleva.core.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from eleva.core.passwords import (
    burn_password_check,
    hash_cost,
    hash_password,
    password_problems,
    verify_password,
)
from eleva.core.study import StudySettings
from eleva.core.text import WHITESPACE
from eleva.core.tokens import TokenPair
from eleva.data import jobs
from eleva.data.db import commit, db, unique_conflicts
from eleva.data.fastread import FastRead
from eleva.data.models import LoginSession, User, utcnow
from eleva.services import emails

log = logging.getLogger("eleva.auth")

BAD_CREDENTIALS = "Invalid login or password."


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """The caller of an authenticated request: their row (but the password hash) as it
    was when their session was checked, and that session's id."""

    id: int
    email: str
    email_verified: bool
    username: str
    full_name: str | None
    bio: str | None
    is_active: bool
    profile_visibility: str
    show_email: bool
    picture_key: str | None
    study_timezone: str
    study_day_starts_at_hour: int
    study_new_cards_per_day: int
    study_desired_retention: float
    created_at: datetime
    updated_at: datetime
    session_id: uuid.UUID
    session_expires_at: datetime

    @property
    def privacy(self) -> dict[str, Any]:
        return {"profile_visibility": self.profile_visibility, "show_email": self.show_email}

    @property
    def study(self) -> StudySettings:
        return StudySettings(
            self.study_timezone,
            self.study_day_starts_at_hour,
            self.study_new_cards_per_day,
            self.study_desired_retention,
        )


_SESSION_FIELDS = {"session_id", "session_expires_at"}
_USER_COLUMNS = tuple(
    User.__table__.c[f.name] for f in fields(CurrentUser) if f.name not in _SESSION_FIELDS
)


# Every request's caller check: the user's row and the login session, by ids.
_CURRENT_USER = FastRead(
    select(*_USER_COLUMNS, LoginSession.id, LoginSession.expires_at)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(
        User.id == bindparam("user_id"),
        User.is_active.is_(True),
        LoginSession.id == bindparam("session_id"),
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > bindparam("now"),
    ),
    CurrentUser,
)


def authenticated_user(user_id: int, session_id: uuid.UUID) -> CurrentUser | None:
    """The user, if active and the session is live: every request's revocation check,
    one statement by ids, answered by the database every time."""
    return _CURRENT_USER.first(user_id=user_id, session_id=session_id, now=utcnow())


def normalise_email(email: str) -> str:
    # NFKC then lower: a full-width copy of an address is the same address.
    return unicodedata.normalize("NFKC", email).strip().lower()


def _rounds() -> int:
    rounds: int = current_app.config["BCRYPT_ROUNDS"]
    return rounds


def check_new_password(
    password: str, *, username: str, email: str, field: str = "password"
) -> None:
    problems = password_problems(password, username=username, email=email)
    if problems:
        raise ValidationFailed(problems[0], errors={"json": {field: problems}})


def register(*, email: str, username: str, password: str, full_name: str | None = None) -> User:
    email = normalise_email(email)
    check_new_password(password, username=username, email=email)
    user = User(
        email=email,
        username=username,
        full_name=full_name,
        password_hash=hash_password(password, rounds=_rounds()),
    )
    db.session.add(user)
    with unique_conflicts():
        db.session.flush()  # the address is this account's (or 409) before it is checked
    if emails.kept_for_another(email, None):  # kept for the account it was taken from
        db.session.rollback()
        raise Conflict.taken("email", "email address")
    emails.later(emails.send_email_verification, user_id=user.id, email=user.email)
    commit()
    jobs.dispatch()
    return user


def login_key(login: str) -> str:
    """The form of a login name that finds its account.

    The same trimming as the login field (``WHITESPACE``, U+FEFF included) and Python's
    own, before and after NFKC: no padding of a name makes it another name.
    """
    key = unicodedata.normalize("NFKC", login.strip(WHITESPACE))
    return key.strip(WHITESPACE).strip().lower()


def login_counter(login: str) -> str:
    """What the per-account login limit counts, for a login name as sent.

    The account's id when the name finds one, so that its email and its username (in
    any spelling) share one counter; otherwise the normalised name.
    """
    key = login_key(login)
    column = User.email if "@" in key else User.username
    user_id = db.session.scalar(select(User.id).where(func.lower(column) == key))
    if user_id is not None:
        return account_counter(user_id)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"login:{digest}"


def account_counter(user_id: int) -> str:
    return f"account:{user_id}"


def find_by_login(login: str) -> User | None:
    """A user by email or username, case-insensitively (one indexed query)."""
    key = login_key(login)
    column = User.email if "@" in key else User.username
    return db.session.scalar(select(User).where(func.lower(column) == key))


def login(
    *, login: str, password: str, user_agent: str | None = None, ip: str | None = None
) -> TokenPair:
    """Start a login session; ``user_agent`` and ``ip`` describe it in the session list."""
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
    return _start_session(user.id, device=device_label(user_agent), ip=ip)


def _lock_unchanged(user: User, password: str) -> None:
    """Re-read the user under a share lock until the session is committed, so that a
    password change or deactivation committed since the check wins."""
    checked_hash = user.password_hash
    db.session.refresh(user, with_for_update={"read": True})
    if user.password_hash != checked_hash and not verify_password(password, user.password_hash):
        db.session.rollback()
        raise Unauthorized(BAD_CREDENTIALS)


def _start_session(user_id: int, *, device: str, ip: str | None) -> TokenPair:
    now = utcnow()
    session = LoginSession(
        id=uuid.uuid4(),
        user_id=user_id,
        refresh_jti=str(uuid.uuid4()),
        created_at=now,
        last_used_at=now,
        expires_at=now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        device=device,
        ip=ip[:45] if ip else None,
    )
    db.session.add(session)
    db.session.commit()
    return _issue(user_id, session.id, session.refresh_jti, session.expires_at, now)


def _issue(
    user_id: int, session_id: uuid.UUID, refresh_jti: str, expires_at: datetime, now: datetime
) -> TokenPair:
    """A fresh pair for one session; neither token outlives the session."""
    remaining = expires_at - now
    access_ttl = max(
        min(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"], remaining), timedelta(seconds=1)
    )
    identity, sid = str(user_id), str(session_id)
    access = create_access_token(identity, additional_claims={"sid": sid}, expires_delta=access_ttl)
    refresh = create_refresh_token(
        identity,
        additional_claims={"sid": sid, "jti": refresh_jti},
        expires_delta=max(remaining, timedelta(seconds=1)),
    )
    return TokenPair(
        access,
        refresh,
        int(access_ttl.total_seconds()),
        refresh_expires_in=max(int(remaining.total_seconds()), 1),
    )


def rotate(user_id: int, session_id: uuid.UUID, jti: str) -> TokenPair:
    """Consume refresh token ``jti`` of the session and hand out a new pair. Any use of a
    consumed token ends the session, but for the grace of two tabs refreshing at once."""
    now = utcnow()
    new_jti = str(uuid.uuid4())
    live = (
        LoginSession.id == session_id,
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now,
    )
    # The swap of refresh_jti is one conditional UPDATE: of two concurrent uses of one
    # token exactly one wins.
    row = db.session.execute(
        update(LoginSession)
        .where(*live, LoginSession.refresh_jti == jti)
        .values(refresh_jti=new_jti, previous_jti=jti, refreshed_at=now, last_used_at=now)
        .returning(LoginSession.refresh_jti, LoginSession.expires_at)
        .execution_options(synchronize_session=False)
    ).first()
    # The token it replaced (previous_jti) still gets a pair within the grace seconds of
    # the swap, one carrying the session's current refresh token: two tabs refreshing at
    # once both stay signed in.
    grace = current_app.config["REFRESH_REUSE_GRACE_SECONDS"]
    if row is None and grace:
        row = db.session.execute(
            update(LoginSession)
            .where(
                *live,
                LoginSession.previous_jti == jti,
                LoginSession.refreshed_at > now - timedelta(seconds=grace),
            )
            .values(last_used_at=now)
            .returning(LoginSession.refresh_jti, LoginSession.expires_at)
            .execution_options(synchronize_session=False)
        ).first()
    if row is None:
        revoked = _revoke(LoginSession.id == session_id, reason="reuse", now=now)
        db.session.commit()
        if revoked:
            log.warning("refresh token reuse: session %s of user %s revoked", session_id, user_id)
        raise Unauthorized(
            "This refresh token was already used. The session has ended; log in again."
        )
    db.session.commit()
    return _issue(user_id, session_id, row.refresh_jti, row.expires_at, now)


def logout(user_id: int, session_ids: set[uuid.UUID]) -> None:
    """End the user's sessions among ``session_ids`` (another user's are untouched)."""
    _revoke((LoginSession.user_id == user_id) & LoginSession.id.in_(session_ids), reason="logout")
    db.session.commit()


def end_sessions(
    user_id: int,
    *,
    reason: str,
    keep: uuid.UUID | None = None,
    only: uuid.UUID | None = None,
) -> int:
    """Revoke the user's live sessions (but ``keep``, or ``only`` that one); how many
    were live. The caller commits."""
    condition = (LoginSession.user_id == user_id) & (LoginSession.expires_at > utcnow())
    if keep is not None:
        condition = condition & (LoginSession.id != keep)
    if only is not None:
        condition = condition & (LoginSession.id == only)
    return _revoke(condition, reason=reason)


def _revoke(condition: Any, *, reason: str, now: datetime | None = None) -> int:
    result = db.session.execute(
        update(LoginSession)
        .where(condition, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
