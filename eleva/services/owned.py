"""What the caller owns: one row by id (subjects, notes, documents, cards) and the
subject something lives in. Another user's row is not found (404, never 403)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from eleva.core.errors import NotFound, ValidationFailed
from eleva.data.db import db
from eleva.data.models import Card, Document, Note, Subject

NO_SUCH_SUBJECT = "No such subject."

Owned = TypeVar("Owned", Subject, Note, Document, Card)


def owned_row(
    model: type[Owned], owner_id: int, row_id: int, *, missing: str, for_update: bool = False
) -> Owned:
    """The owner's row of ``model``, or NotFound(``missing``). ``for_update`` locks it
    (PostgreSQL) so that an If-Match check and the write after it are one atomic step."""
    query = select(model).where(model.id == row_id, model.owner_id == owner_id)
    if for_update:
        query = query.with_for_update()
    row = db.session.scalar(query)
    if row is None:
        raise NotFound(missing)
    return row


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
