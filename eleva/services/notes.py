"""A user's notes, each in one of their subjects. Every function is confined to one
owner: another user's note or subject does not exist as far as the caller can tell."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import load_only

from eleva.core.markdown import excerpt
from eleva.data.db import commit, db
from eleva.data.models import Card, Note, User, utcnow
from eleva.data.pages import Page, SortColumns, ordered, paginate, sort_keys
from eleva.services import documents, owned

# Sort keys the API accepts, and what each orders by; id breaks ties so that pages never
# overlap or skip rows. Titles sort without case, as subject names do.
SORT_COLUMNS: SortColumns = {
    "updated_at": lambda: Note.updated_at,
    "created_at": lambda: Note.created_at,
    "title": lambda: func.lower(Note.title),
}
SORT_KEYS = sort_keys(SORT_COLUMNS)

NO_SUCH_NOTE = "No such note."
# What a list shows of a note: never its body, of up to 100,000 characters.
LISTED = load_only(
    Note.id, Note.subject_id, Note.title, Note.excerpt, Note.created_at, Note.updated_at
)


def list_notes(
    owner_id: int, subject_id: int, *, sort: str = "-updated_at", page: int = 1, page_size: int = 20
) -> Page[Note]:
    """One page of the notes of the owner's subject and their total (NotFound when the
    subject is not the owner's)."""
    owned.require_subject(owner_id, subject_id, lock=False)
    query = (
        select(Note).options(LISTED).where(Note.owner_id == owner_id, Note.subject_id == subject_id)
    )
    return paginate(ordered(query, sort, SORT_COLUMNS, Note.id), page=page, page_size=page_size)


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
    owned.require_subject(owner_id, subject_id)
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
    """The owner's note, or NotFound; ``for_update`` locks its row (PostgreSQL)."""
    return owned.owned_row(Note, owner_id, note_id, missing=NO_SUCH_NOTE, for_update=for_update)


def update_note(owner_id: int, note: Note, changes: dict[str, Any]) -> Note:
    """Change the title, the body, or move the note to another of the owner's subjects
    (a field error on ``subject_id`` when that subject is not theirs)."""
    subject_id = changes.get("subject_id", note.subject_id)
    if subject_id != note.subject_id:
        owned.require_target_subject(owner_id, subject_id)
        # A card's note is a note of its subject: cards left behind lose the link.
        db.session.execute(
            update(Card)
            .where(Card.note_id == note.id, Card.subject_id != subject_id)
            .values(note_id=None)
        )
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
