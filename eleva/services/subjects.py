"""A user's subjects. Every function is confined to one owner: another user's subject
does not exist as far as the caller can tell (404, never 403)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    func,
    insert,
    select,
    true,
    update,
)

from eleva.core.errors import NotFound
from eleva.data.db import commit, db
from eleva.data.fastread import FastRead, FastWrite
from eleva.data.models import Subject, User, utcnow
from eleva.services import documents, notes

# Sort keys the API accepts, and what each orders by (given the subject columns, of the
# table or of a subquery). id breaks ties so that pages never overlap or skip rows.
SORT_COLUMNS: dict[str, Callable[[Any], ColumnElement]] = {
    "name": lambda columns: func.lower(columns.name),
    "created_at": lambda columns: columns.created_at,
    "updated_at": lambda columns: columns.updated_at,
}
SORT_KEYS = tuple(k for key in SORT_COLUMNS for k in (key, f"-{key}"))

# Past the last page the answer is empty. Subject ids are 32-bit, so no owner has more
# rows than this: the clamp keeps OFFSET within the database's integer range whatever
# page number was asked for.
MAX_OFFSET = 2**31 - 1


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
    items: Sequence[SubjectRow]
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
    """One page of the owner's subjects and their total: one statement, however many
    subjects. The total is the owner's counters (kept by triggers), or with a search a
    count of the matches."""
    params: dict[str, Any] = {"owner_id": owner_id}
    if q:
        params["term"] = like_escaped(q.lower())
    offset = min((page - 1) * page_size, MAX_OFFSET)
    rows = _page(archived, sort, bool(q)).all(**params, offset=offset, limit=page_size)
    # One row even for an empty page (the total, subject columns NULL).
    total = rows[0][0] if rows else 0
    return SubjectPage([SubjectRow(*row[1:]) for row in rows if row[1] is not None], total or 0)


def _filtered(query: Select, archived: str, searching: bool) -> Select:
    query = query.where(Subject.owner_id == bindparam("owner_id"))
    if archived != "all":
        query = query.where(Subject.is_archived.is_(archived == "true"))
    if searching:
        term = bindparam("term", type_=String())
        query = query.where(
            func.lower(Subject.name).contains(term, escape=LIKE_ESCAPE)
            | func.lower(Subject.description).contains(term, escape=LIKE_ESCAPE)
        )
    return query


def _total(archived: str, searching: bool) -> ColumnElement:
    if searching:
        return _filtered(
            select(func.count()).select_from(Subject), archived, True
        ).scalar_subquery()
    counter = {
        "false": User.subjects_active,
        "true": User.subjects_archived,
        "all": User.subjects_active + User.subjects_archived,
    }[archived]
    return select(counter).where(User.id == bindparam("owner_id")).scalar_subquery()


# One statement per shape of list, built on first use (a select() costs more to build
# than to run).
@cache
def _page(archived: str, sort: str, searching: bool) -> FastRead[tuple]:
    subjects = Subject.__table__.c
    page = (
        _ordered(
            _filtered(select(*(subjects[f] for f in SubjectRow._fields)), archived, searching),
            sort,
            subjects,
        )
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery("page")
    )
    totals = select(_total(archived, searching).label("total")).subquery("totals")
    query = select(totals.c.total, page).select_from(totals.outerjoin(page, true()))
    # Ordered inside (the LIMIT walks an index) and again outside: a join does not
    # promise to keep its input's order.
    return FastRead(_ordered(query, sort, page.c), _as_tuple)


def _as_tuple(*values: Any) -> tuple:
    return values


LIKE_ESCAPE = "/"


def like_escaped(term: str) -> str:
    """``term`` matched literally by LIKE: its wildcards and the escape character escaped."""
    for char in (LIKE_ESCAPE, "%", "_"):
        term = term.replace(char, LIKE_ESCAPE + char)
    return term


def _ordered(query: Select, sort: str, columns: Any) -> Select:
    key = SORT_COLUMNS[sort.lstrip("-")](columns)
    if sort.startswith("-"):
        return query.order_by(key.desc(), columns.id.desc())
    return query.order_by(key.asc(), columns.id.asc())


def create_subject(owner_id: int, data: dict[str, Any]) -> SubjectRow:
    """A new subject of the owner's, in one statement; a name taken is a 409."""
    now = utcnow()
    values = {"description": None, "color": None, "is_archived": False, **_normalised(data)}
    row = _CREATE.first(**_as_params({**values, "owner_id": owner_id}), now=now)
    assert row is not None  # noqa: S101 (INSERT … RETURNING returns its row)
    return row


def _as_params(values: dict[str, Any]) -> dict[str, Any]:
    # A bindparam may not share its column's name in VALUES or SET: v_<column>.
    return {f"v_{field}": value for field, value in values.items()}


def read_subject(owner_id: int, subject_id: int) -> SubjectRow:
    """The owner's subject as committed (one fast read, no transaction), or NotFound."""
    row = _ONE.first(owner_id=owner_id, subject_id=subject_id)
    if row is None:
        raise NotFound("No such subject.")
    return row


_COLUMNS = tuple(Subject.__table__.c[f] for f in SubjectRow._fields)
_CREATE = FastWrite(
    insert(Subject)
    .values(
        {
            **{f: bindparam(f"v_{f}") for f in ("owner_id", "name", "description", "color")},
            "is_archived": bindparam("v_is_archived"),
            "note_count": 0,  # a compiled INSERT run on the driver applies no defaults
            "created_at": bindparam("now"),
            "updated_at": bindparam("now"),
        }
    )
    .returning(*_COLUMNS),
    SubjectRow,
)
_ONE = FastRead(
    select(*_COLUMNS).where(
        Subject.id == bindparam("subject_id"), Subject.owner_id == bindparam("owner_id")
    ),
    SubjectRow,
)


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


def update_subject_by_id(owner_id: int, subject_id: int, changes: dict[str, Any]) -> SubjectRow:
    """Change the owner's subject in one statement, a transaction by itself (nothing is
    read first: nothing is checked against its current state), or NotFound; a name
    taken is a 409."""
    values = _normalised(changes)
    row = _updating(tuple(sorted(values))).first(
        **_as_params(values), key_owner=owner_id, key_id=subject_id, now=utcnow()
    )
    if row is None:
        raise NotFound("No such subject.")
    return row


@cache
def _updating(fields: tuple[str, ...]) -> FastWrite[SubjectRow]:
    # One statement per set of fields changed (at most 16), built on first use.
    return FastWrite(
        update(Subject)
        .where(Subject.id == bindparam("key_id"), Subject.owner_id == bindparam("key_owner"))
        # Every accepted write is a new version, even one that changes no value: its
        # ETag must differ from the one the writer presented.
        .values({**{f: bindparam(f"v_{f}") for f in fields}, "updated_at": bindparam("now")})
        .returning(*_COLUMNS),
        SubjectRow,
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
