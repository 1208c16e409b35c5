"""A user's login sessions: where they are signed in, and ending some of them.

Ending a session takes effect on the next request, on every instance: each request's
access check reads ``login_sessions`` (``eleva.services.auth.authenticated_user``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select

from eleva.core.errors import NotFound
from eleva.data.db import db
from eleva.data.models import LoginSession, utcnow
from eleva.data.pages import Page, paginate
from eleva.services import auth


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    device: str
    ip: str | None
    current: bool


def _live(user_id: int) -> tuple[ColumnElement[bool], ...]:
    return (
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > utcnow(),
    )


def list_sessions(
    user_id: int, current: uuid.UUID, *, page: int = 1, page_size: int = 20
) -> Page[SessionView]:
    """The user's live sessions, most recently used first (ties: newest login first)."""
    last_used = func.coalesce(LoginSession.last_used_at, LoginSession.created_at)
    query = (
        select(LoginSession)
        .where(*_live(user_id))
        .order_by(last_used.desc(), LoginSession.created_at.desc(), LoginSession.id)
    )
    found = paginate(query, page=page, page_size=page_size)
    items = [
        SessionView(
            s.id,
            s.created_at,
            s.last_used_at or s.created_at,
            s.device or "Unknown device",
            s.ip,
            s.id == current,
        )
        for s in found.items
    ]
    return Page(items, found.total)


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
