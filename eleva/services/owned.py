"""What the caller owns: the checks shared by everything that lives in a subject
(notes, documents, cards). Another user's subject is not found (404, never 403)."""

from __future__ import annotations

from sqlalchemy import select

from eleva.core.errors import NotFound, ValidationFailed
from eleva.data.db import db
from eleva.data.models import Subject

NO_SUCH_SUBJECT = "No such subject."


def require_subject(owner_id: int, subject_id: int, *, lock: bool = True) -> None:
    """NotFound unless the subject is the owner's. ``lock`` (to write a row into it):
    FOR KEY SHARE on PostgreSQL, so that it cannot be deleted before this transaction
    commits, while its name and the like stay writable."""
    query = select(Subject.id).where(Subject.id == subject_id, Subject.owner_id == owner_id)
    if lock:
        query = query.with_for_update(read=True, key_share=True)
    if db.session.scalar(query) is None:
        raise NotFound(NO_SUCH_SUBJECT)


def require_target_subject(owner_id: int, subject_id: int) -> None:
    """A subject named in a body (a move): a field error on ``subject_id`` unless it is
    the owner's; locked as ``require_subject`` does."""
    try:
        require_subject(owner_id, subject_id)
    except NotFound:
        raise ValidationFailed.field("subject_id", "No such subject among yours.") from None
