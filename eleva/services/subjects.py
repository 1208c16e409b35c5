"""A user's subjects. Every function takes the owner: another user's subject does not
exist as far as the caller can tell (404, never 403)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Select, bindparam, func, select

from eleva.errors import NotFound
from eleva.extensions import db
from eleva.models import Subject, utcnow
from eleva.services.db import HotSelect, commit_unique

SUBJECT_UNIQUE_FIELDS = {"uq_subjects_owner_name_lower": ("name", "subject name")}

# Sort keys the API accepts, and the columns each orders by. id breaks ties so that
# pages never overlap or skip rows.
SORT_COLUMNS = {
    "name": func.lower(Subject.name),
    "created_at": Subject.created_at,
    "updated_at": Subject.updated_at,
}
SORT_KEYS = tuple(k for key in SORT_COLUMNS for k in (key, f"-{key}"))


class SubjectCounts(Protocol):
    """The owner's counters (kept by database triggers), as the caller was loaded."""

    id: int
    subjects_active: int
    subjects_archived: int


class SubjectRow(NamedTuple):
    """A list item: the columns SubjectSchema shows, read without the ORM."""

    id: int
    name: str
    description: str | None
    color: str | None
    is_archived: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SubjectPage:
    items: list[SubjectRow]
    total: int


def list_subjects(
    owner: SubjectCounts,
    *,
    archived: str = "false",
    q: str | None = None,
    sort: str = "-updated_at",
    page: int = 1,
    page_size: int = 20,
) -> SubjectPage:
    """One page of the owner's subjects and the total, whatever the number of subjects.

    Without a search the total is the owner's counters, read with the caller by the
    authentication query: one statement (the page). A search counts its matches: two.
    """
    params: dict[str, Any] = {"owner_id": owner.id}
    if q:
        params["term"] = _like_escaped(q.lower())
        total = _match_count(archived).scalar(**params)
    else:
        total = {
            "false": owner.subjects_active,
            "true": owner.subjects_archived,
            "all": owner.subjects_active + owner.subjects_archived,
        }[archived]
    # Past the last page the answer is empty; clamping keeps OFFSET within the
    # database's integer range whatever page number was asked for.
    offset = min((page - 1) * page_size, total)
    items = _page(archived, sort, bool(q)).all(**params, offset=offset, limit=page_size)
    return SubjectPage(items, total)


def _filtered(query: Select, archived: str, searching: bool) -> Select:
    query = query.where(Subject.owner_id == bindparam("owner_id"))
    if archived != "all":
        query = query.where(Subject.is_archived.is_(archived == "true"))
    if searching:
        term = bindparam("term")
        query = query.where(
            func.lower(Subject.name).contains(term, escape=LIKE_ESCAPE)
            | func.lower(Subject.description).contains(term, escape=LIKE_ESCAPE)
        )
    return query


# One statement per shape of list, built on first use (a select() costs more to build
# than to run).
@cache
def _page(archived: str, sort: str, searching: bool) -> HotSelect[SubjectRow]:
    query = _filtered(
        select(*(Subject.__table__.c[f] for f in SubjectRow._fields)), archived, searching
    )
    query = _ordered(query, sort).offset(bindparam("offset")).limit(bindparam("limit"))
    return HotSelect(query, SubjectRow)


@cache
def _match_count(archived: str) -> HotSelect[int]:
    return HotSelect(_filtered(select(func.count()).select_from(Subject), archived, True), int)


LIKE_ESCAPE = "/"


def _like_escaped(term: str) -> str:
    """``term`` matched literally by LIKE: its wildcards and the escape character escaped."""
    for char in (LIKE_ESCAPE, "%", "_"):
        term = term.replace(char, LIKE_ESCAPE + char)
    return term


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
