"""A user's subjects. Every function is confined to one owner: another user's subject
does not exist as far as the caller can tell (404, never 403)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from eleva.data.db import commit, db
from eleva.data.models import Subject, utcnow
from eleva.data.pages import Page, SortColumns, ordered, paginate, sort_keys
from eleva.services import documents, notes, owned

# Sort keys the API accepts, and what each orders by. id breaks ties so that pages never
# overlap or skip rows.
SORT_COLUMNS: SortColumns = {
    "name": lambda: func.lower(Subject.name),
    "created_at": lambda: Subject.created_at,
    "updated_at": lambda: Subject.updated_at,
}
SORT_KEYS = sort_keys(SORT_COLUMNS)


def list_subjects(
    owner_id: int,
    *,
    archived: str = "false",
    q: str | None = None,
    sort: str = "-updated_at",
    page: int = 1,
    page_size: int = 20,
) -> Page[Subject]:
    """One page of the owner's subjects, filtered and sorted, with their total."""
    query = select(Subject).where(Subject.owner_id == owner_id)
    if archived != "all":
        query = query.where(Subject.is_archived.is_(archived == "true"))
    if q:
        term = like_escaped(q.lower())
        query = query.where(
            func.lower(Subject.name).contains(term, escape=LIKE_ESCAPE)
            | func.lower(Subject.description).contains(term, escape=LIKE_ESCAPE)
        )
    return paginate(ordered(query, sort, SORT_COLUMNS, Subject.id), page=page, page_size=page_size)


LIKE_ESCAPE = "/"


def like_escaped(term: str) -> str:
    """``term`` matched literally by LIKE: its wildcards and the escape character escaped."""
    for char in (LIKE_ESCAPE, "%", "_"):
        term = term.replace(char, LIKE_ESCAPE + char)
    return term


def create_subject(owner_id: int, data: dict[str, Any]) -> Subject:
    """A new subject of the owner's; a name taken is a 409."""
    subject = Subject(owner_id=owner_id, **_normalised(data))
    db.session.add(subject)
    commit()
    return subject


def get_subject(owner_id: int, subject_id: int, *, for_update: bool = False) -> Subject:
    """The owner's subject, or NotFound; ``for_update`` locks its row (PostgreSQL)."""
    return owned.owned_row(
        Subject, owner_id, subject_id, missing=owned.NO_SUCH_SUBJECT, for_update=for_update
    )


def update_subject(subject: Subject, changes: dict[str, Any]) -> Subject:
    for field, value in _normalised(changes).items():
        setattr(subject, field, value)
    # Every accepted write is a new version, even one that changes no value: its
    # ETag must differ from the one the writer presented.
    subject.updated_at = utcnow()
    commit()
    return subject


def delete_subject(subject: Subject) -> None:
    """Delete the subject with its notes and documents; the documents' stored files
    go after the commit, best effort (the storage sweep removes what is left)."""
    keys = documents.release_subject_documents(subject.owner_id, subject.id)
    notes.release_subject_notes(subject.owner_id, subject.id)
    db.session.delete(subject)
    db.session.commit()
    for key in keys:
        documents.discard(key)


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if data.get("color"):
        data["color"] = data["color"].upper()
    return data
