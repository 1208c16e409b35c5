"""A user's subjects. Every function takes the owner: another user's subject does not
exist as far as the caller can tell (404, never 403)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from eleva.errors import NotFound
from eleva.extensions import db
from eleva.models import Subject, User, utcnow
from eleva.services.db import commit_unique

SUBJECT_UNIQUE_FIELDS = {"uq_subjects_owner_name_lower": ("name", "subject name")}

# Sort keys the API accepts, and the columns each orders by. id breaks ties so that
# pages never overlap or skip rows.
SORT_COLUMNS = {
    "name": func.lower(Subject.name),
    "created_at": Subject.created_at,
    "updated_at": Subject.updated_at,
}
SORT_KEYS = tuple(k for key in SORT_COLUMNS for k in (key, f"-{key}"))


@dataclass(frozen=True)
class SubjectPage:
    items: list[Subject]
    total: int


def list_subjects(
    owner_id: int,
    *,
    archived: str = "false",
    q: str | None = None,
    sort: str = "-updated_at",
    page: int = 1,
    page_size: int = 20,
) -> SubjectPage:
    """One page of the owner's subjects and the total: two queries, whatever the size."""
    query = select(Subject).where(Subject.owner_id == owner_id)
    if archived != "all":
        query = query.where(Subject.is_archived.is_(archived == "true"))
    if q:
        term = q.lower()
        query = query.where(
            func.lower(Subject.name).contains(term, autoescape=True)
            | func.lower(Subject.description).contains(term, autoescape=True)
        )
    total = db.session.scalar(_count(owner_id, archived, query, searching=bool(q)))
    # Past the last page the answer is empty; clamping keeps OFFSET within the
    # database's integer range whatever page number was asked for.
    offset = min((page - 1) * page_size, total)
    items = db.session.scalars(_ordered(query, sort).offset(offset).limit(page_size)).all()
    return SubjectPage(list(items), total)


def _count(owner_id: int, archived: str, query: Select, *, searching: bool) -> Select:
    """The statement giving the list's total.

    Without a search it reads the owner's counters (kept by triggers): one row, however
    many subjects. A search has to count its matches.
    """
    if searching:
        return query.with_only_columns(func.count(Subject.id))
    column = {
        "false": User.subjects_active,
        "true": User.subjects_archived,
        "all": User.subjects_active + User.subjects_archived,
    }[archived]
    return select(column).where(User.id == owner_id)


def _ordered(query: Select, sort: str) -> Select:
    descending = sort.startswith("-")
    column = SORT_COLUMNS[sort.lstrip("-")]
    if descending:
        return query.order_by(column.desc(), Subject.id.desc())
    return query.order_by(column.asc(), Subject.id.asc())


def create_subject(owner_id: int, data: dict[str, Any]) -> Subject:
    subject = Subject(owner_id=owner_id, **_normalised(data))
    db.session.add(subject)
    commit_unique(SUBJECT_UNIQUE_FIELDS)
    return subject


def get_subject(owner_id: int, subject_id: int, *, for_update: bool = False) -> Subject:
    """The owner's subject, or NotFound. ``for_update`` locks the row (PostgreSQL) so
    that an If-Match check and the write that follows it are one atomic step."""
    query = select(Subject).where(Subject.id == subject_id, Subject.owner_id == owner_id)
    if for_update:
        query = query.with_for_update()
    subject = db.session.scalar(query)
    if subject is None:
        raise NotFound("No such subject.")
    return subject


def update_subject(subject: Subject, changes: dict[str, Any]) -> Subject:
    for field, value in _normalised(changes).items():
        setattr(subject, field, value)
    # Every accepted write is a new version, even one that changes no value: its
    # ETag must differ from the one the writer presented.
    subject.updated_at = utcnow()
    commit_unique(SUBJECT_UNIQUE_FIELDS)
    return subject


def delete_subject(subject: Subject) -> None:
    db.session.delete(subject)
    db.session.commit()


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if data.get("color"):
        data["color"] = data["color"].upper()
    return data
