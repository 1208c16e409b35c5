"""A user's notes, each in one of their subjects. Every function is confined to one
owner: another user's note or subject does not exist as far as the caller can tell."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, func, select, true, update

from eleva.core.errors import NotFound, ValidationFailed
from eleva.core.markdown import excerpt
from eleva.data.db import commit, db
from eleva.data.fastread import FastRead
from eleva.data.models import Note, Subject, User, utcnow
from eleva.services import documents

# Sort keys the API accepts, and what each orders by; id breaks ties so that pages never
# overlap or skip rows. Titles sort without case, as subject names do.
SORT_COLUMNS: dict[str, Callable[[Any], ColumnElement]] = {
    "updated_at": lambda columns: columns.updated_at,
    "created_at": lambda columns: columns.created_at,
    "title": lambda columns: func.lower(columns.title),
}
SORT_KEYS = tuple(k for key in SORT_COLUMNS for k in (f"-{key}", key))

# Note ids are 32-bit: OFFSET stays within the database's integer range.
MAX_OFFSET = 2**31 - 1

NO_SUCH_SUBJECT = "No such subject."
NO_SUCH_NOTE = "No such note."


class NoteRow(NamedTuple):
    """A list item: the columns NoteListItemSchema shows, read without the ORM."""

    id: int
    subject_id: int
    title: str
    excerpt: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NotePage:
    items: Sequence[NoteRow]
    total: int


def list_notes(
    owner_id: int, subject_id: int, *, sort: str = "-updated_at", page: int = 1, page_size: int = 20
) -> NotePage:
    """One page of the notes of the owner's subject and their total, in one statement
    however many notes: the total is the subject's counter (kept by triggers). NotFound
    when the subject is not the owner's."""
    offset = min((page - 1) * page_size, MAX_OFFSET)
    rows = _page(sort).all(owner_id=owner_id, subject_id=subject_id, offset=offset, limit=page_size)
    if not rows:  # not even the subject's row: not the owner's
        raise NotFound(NO_SUCH_SUBJECT)
    return NotePage([NoteRow(*row[1:]) for row in rows if row[1] is not None], rows[0][0])


# One statement per sort key, built on first use.
@cache
def _page(sort: str) -> FastRead[tuple]:
    notes = Note.__table__.c
    page = (
        _ordered(
            select(*(notes[f] for f in NoteRow._fields)).where(
                notes.owner_id == bindparam("owner_id"),
                notes.subject_id == bindparam("subject_id"),
            ),
            sort,
            notes,
        )
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery("page")
    )
    subject = (
        select(Subject.note_count.label("total"))
        .where(Subject.id == bindparam("subject_id"), Subject.owner_id == bindparam("owner_id"))
        .subquery("subject")
    )
    # The subject's row, joined to the page: no row at all when the subject is not the
    # owner's, one row with NULL note columns for an empty page.
    query = select(subject.c.total, page).select_from(subject.outerjoin(page, true()))
    # Ordered inside (the LIMIT walks an index) and again outside: a join does not
    # promise to keep its input's order.
    return FastRead(_ordered(query, sort, page.c), _as_tuple)


def _as_tuple(*values: Any) -> tuple:
    return values


def _ordered(query: Select, sort: str, columns: Any) -> Select:
    key = SORT_COLUMNS[sort.lstrip("-")](columns)
    if sort.startswith("-"):
        return query.order_by(key.desc(), columns.id.desc())
    return query.order_by(key.asc(), columns.id.asc())


def _owned_subject_exists(owner_id: int, subject_id: int) -> bool:
    # FOR KEY SHARE (PostgreSQL): the subject cannot be deleted before this transaction
    # writes a note into it, while its name, counters and the like stay writable.
    query = (
        select(Subject.id)
        .where(Subject.id == subject_id, Subject.owner_id == owner_id)
        .with_for_update(read=True, key_share=True)
    )
    return db.session.scalar(query) is not None


def note_size(title: str, body: str) -> int:
    """What a note counts in its owner's storage quota: title and body in UTF-8."""
    return len(title.encode()) + len(body.encode())


def _count_bytes(owner_id: int, delta: int) -> None:
    """Add ``delta`` bytes to the owner's storage_used, in the caller's transaction. A
    growth past the quota is refused (413), as a document's is: one conditional UPDATE,
    so two writes at once that each fit but together do not cannot both pass."""
    if delta == 0:
        return
    query = update(User).where(User.id == owner_id)
    if delta > 0:
        query = query.where(User.storage_used + delta <= documents.quota_bytes())
    counted = db.session.execute(
        query.values(storage_used=User.storage_used + delta)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    ).first()
    if counted is None:
        db.session.rollback()
        raise documents.over_quota()


def create_note(owner_id: int, subject_id: int, data: dict[str, Any]) -> Note:
    """A new note in the owner's subject (NotFound when it is not theirs), counted in
    their storage quota (413 past it)."""
    if not _owned_subject_exists(owner_id, subject_id):
        raise NotFound(NO_SUCH_SUBJECT)
    body = data.get("body", "")
    note = Note(
        owner_id=owner_id,
        subject_id=subject_id,
        title=data["title"],
        body=body,
        excerpt=excerpt(body),
        size=note_size(data["title"], body),
    )
    _count_bytes(owner_id, note.size)
    db.session.add(note)
    commit()
    return note


def get_note(owner_id: int, note_id: int, *, for_update: bool = False) -> Note:
    """The owner's note, or NotFound. ``for_update`` locks the row (PostgreSQL) so that
    an If-Match check and the write that follows it are one atomic step."""
    query = select(Note).where(Note.id == note_id, Note.owner_id == owner_id)
    if for_update:
        query = query.with_for_update()
    note = db.session.scalar(query)
    if note is None:
        raise NotFound(NO_SUCH_NOTE)
    return note


def update_note(owner_id: int, note: Note, changes: dict[str, Any]) -> Note:
    """Change the title, the body, or move the note to another of the owner's subjects
    (a field error on ``subject_id`` when that subject is not theirs)."""
    subject_id = changes.get("subject_id", note.subject_id)
    if subject_id != note.subject_id and not _owned_subject_exists(owner_id, subject_id):
        raise ValidationFailed.field("subject_id", "No such subject among yours.")
    title, body = changes.get("title", note.title), changes.get("body", note.body)
    size = note_size(title, body)
    # Before the note changes (whose flush would come first): 413 past the quota.
    _count_bytes(owner_id, size - note.size)
    note.subject_id = subject_id
    note.title, note.size = title, size
    if "body" in changes:
        note.body = body
        note.excerpt = excerpt(body)
    # Every accepted write is a new version, even one that changes no value: its ETag
    # must differ from the one the writer presented.
    note.updated_at = utcnow()
    commit()
    return note


def delete_note(note: Note) -> None:
    _count_bytes(note.owner_id, -note.size)
    db.session.delete(note)
    db.session.commit()


def release_subject_notes(owner_id: int, subject_id: int) -> None:
    """Before a subject is deleted (in its transaction): its notes' bytes leave the
    owner's storage_used (the notes go with the subject, by cascade). One statement."""
    notes_size = (
        select(func.coalesce(func.sum(Note.size), 0))
        .where(Note.owner_id == owner_id, Note.subject_id == subject_id)
        .scalar_subquery()
    )
    db.session.execute(
        update(User)
        .where(User.id == owner_id)
        .values(storage_used=User.storage_used - notes_size)
        .execution_options(synchronize_session=False)
    )
