"""A user's login sessions: where they are signed in, and ending some of them.

Ending a session takes effect on every instance as soon as PostgreSQL's notification of
the commit reaches each worker (well under a millisecond measured, bench.revocation):
each request's access check reads ``login_sessions``, or what its worker kept of it
until that notification (``eleva.services.auth.authenticated_user``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from eleva.core.errors import NotFound
from eleva.data.db import db
from eleva.data.models import LoginSession, utcnow
from eleva.services import auth

# A page number far past the end is an empty page, not an OFFSET PostgreSQL refuses.
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    device: str
    ip: str | None
    current: bool


@dataclass(frozen=True)
class SessionPage:
    items: list[SessionView]
    total: int


def _live(user_id: int) -> tuple:
    return (
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > utcnow(),
    )


def list_sessions(
    user_id: int, current: uuid.UUID, *, page: int = 1, page_size: int = 20
) -> SessionPage:
    """The user's live sessions, most recently used first (ties: newest login first)."""
    last_used = func.coalesce(LoginSession.last_used_at, LoginSession.created_at)
    rows = db.session.execute(
        select(
            func.count().over(),
            LoginSession.id,
            LoginSession.created_at,
            last_used,
            LoginSession.device,
            LoginSession.ip,
        )
        .where(*_live(user_id))
        .order_by(last_used.desc(), LoginSession.created_at.desc(), LoginSession.id)
        .offset(min((page - 1) * page_size, MAX_OFFSET))
        .limit(page_size)
    ).all()
    total = rows[0][0] if rows else _count(user_id) if page > 1 else 0
    items = [
        SessionView(sid, created, used, device or "Unknown device", ip, sid == current)
        for _, sid, created, used, device, ip in rows
    ]
    return SessionPage(items, total)


def _count(user_id: int) -> int:
    return db.session.scalar(select(func.count()).where(*_live(user_id))) or 0


def end_session(user_id: int, session_id: uuid.UUID) -> None:
    """End one of the user's live sessions; NotFound if there is none by that id."""
    ended = auth.end_sessions(user_id, reason="ended", only=session_id)
    db.session.commit()
    if not ended:
        raise NotFound("No such session.")


def end_other_sessions(user_id: int, keep: uuid.UUID) -> None:
    """End every live session of the user but ``keep``."""
    auth.end_sessions(user_id, reason="ended", keep=keep)
    db.session.commit()
