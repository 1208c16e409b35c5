"""A user's subjects. Every function is confined to one owner (the caller, or the owner
of the token presented): another user's subject does not exist as far as the caller
can tell (404, never 403)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, func, null, select, true

from eleva.errors import NotFound
from eleva.extensions import db
from eleva.models import Subject, utcnow
from eleva.services import auth
from eleva.services.db import HotSelect, commit_unique

SUBJECT_UNIQUE_FIELDS = {"uq_subjects_owner_name_lower": ("name", "subject name")}

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
    owner: auth.Principal | None  # None: the token's session is not live, there is no page
    items: Sequence[SubjectRow]
    total: int


_NO_PAGE = SubjectPage(None, (), 0)

# Each row of a page: the caller's columns, the search's match count (NULL without a
# search), the subject's columns.
_OWNER_END = auth.PRINCIPAL_WIDTH
_ITEM_START = _OWNER_END + 1


def list_subjects(
    claims: dict[str, Any],
    *,
    archived: str = "false",
    q: str | None = None,
    sort: str = "-updated_at",
    page: int = 1,
    page_size: int = 20,
) -> SubjectPage:
    """One page of the token owner's subjects and their total, with the owner.

    One statement, whatever the number of subjects, and it is the request's
    authentication too: the page is LEFT JOINed to the authentication query
    (``auth.authenticated_caller_subquery``), so a session that is not live yields no
    row and no page (``owner`` None), and a live one yields its caller even when the
    page is empty. The total is the owner's counters (kept by triggers), or with a
    search a count of the matches in the same statement.
    """
    params = auth.session_params(claims)
    if params is None:
        return _NO_PAGE
    if q:
        params["term"] = _like_escaped(q.lower())
    offset = min((page - 1) * page_size, MAX_OFFSET)
    rows = _page(archived, sort, bool(q)).all(**params, offset=offset, limit=page_size)
    if not rows:
        return _NO_PAGE
    owner = auth.Principal(*rows[0][:_OWNER_END])
    if q:
        total = rows[0][_OWNER_END]
    else:
        total = {
            "false": owner.subjects_active,
            "true": owner.subjects_archived,
            "all": owner.subjects_active + owner.subjects_archived,
        }[archived]
    # A live caller with an empty page is one row whose subject columns are NULL.
    items = [SubjectRow(*row[_ITEM_START:]) for row in rows if row[_ITEM_START] is not None]
    return SubjectPage(owner, items, total)


def _filtered(query: Select, archived: str, searching: bool) -> Select:
    query = query.where(Subject.owner_id == bindparam("user_id"))
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
def _page(archived: str, sort: str, searching: bool) -> HotSelect[tuple]:
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
    if searching:
        matches = _filtered(select(func.count()).select_from(Subject), archived, True)
        total = matches.scalar_subquery()
    else:
        total = null()
    caller = auth.authenticated_caller_subquery()
    # The owner is the caller: the page's owner_id is the same parameter the
    # authentication query checks against a live session of that user.
    query = select(caller, total.label("total"), page).select_from(caller.outerjoin(page, true()))
    # Ordered inside (the LIMIT walks an index) and again outside: a join does not
    # promise to keep its input's order.
    return HotSelect(_ordered(query, sort, page.c), _as_tuple)


def _as_tuple(*values: Any) -> tuple:
    return values


LIKE_ESCAPE = "/"


def _like_escaped(term: str) -> str:
    """``term`` matched literally by LIKE: its wildcards and the escape character escaped."""
    for char in (LIKE_ESCAPE, "%", "_"):
        term = term.replace(char, LIKE_ESCAPE + char)
    return term


def _ordered(query: Select, sort: str, columns: Any) -> Select:
    key = SORT_COLUMNS[sort.lstrip("-")](columns)
    if sort.startswith("-"):
        return query.order_by(key.desc(), columns.id.desc())
    return query.order_by(key.asc(), columns.id.asc())


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
