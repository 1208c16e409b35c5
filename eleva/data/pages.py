"""The one way to page a list: its items and its total, from one statement.

The total is ``count(*) OVER ()`` of the same filtered query, so a new filter can never
answer a wrong total; only a page past the end (no row to carry it) costs a count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import QueryableAttribute

from eleva.data.db import db

T = TypeVar("T")
# What a list sorts by: a column, or an expression of one (lower(name)).
Sortable = ColumnElement[Any] | QueryableAttribute[Any]
SortColumns = Mapping[str, Callable[[], Sortable]]

# OFFSET is a bigint on PostgreSQL and SQLite; no list has more rows than 32-bit ids
# allow, so a larger page number is simply past the end.
MAX_OFFSET = 2**31 - 1
TOTAL = "_total"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int


def paginate(query: Select[Any], *, page: int, page_size: int) -> Page[Any]:
    """One page of ``query`` (ordered, ties broken by a unique key) and its total.

    A query of one entity pages entities; any other query pages its rows (whose extra
    ``_total`` column a response schema ignores).
    """
    offset = min((page - 1) * page_size, MAX_OFFSET)
    paged = query.add_columns(func.count().over().label(TOTAL)).offset(offset).limit(page_size)
    rows = db.session.execute(paged).all()
    if rows:
        total = int(rows[0][-1])
    elif offset == 0:
        total = 0
    else:
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        total = int(db.session.scalar(counted) or 0)
    if _one_entity(query):
        return Page([row[0] for row in rows], total)
    return Page(rows, total)


def _one_entity(query: Select[Any]) -> bool:
    descriptions = query.column_descriptions
    return len(descriptions) == 1 and descriptions[0]["expr"] is descriptions[0]["entity"]


def sort_keys(columns: SortColumns) -> tuple[str, ...]:
    """The ``sort`` values a list accepts for these keys: each, and each with '-'."""
    return tuple(k for key in columns for k in (key, f"-{key}"))


def ordered(
    query: Select[Any],
    sort: str,
    columns: SortColumns,
    tiebreaker: Sortable,
) -> Select[Any]:
    """``query`` ordered by ``sort`` (a key of ``columns``, '-' for descending), ties
    broken by ``tiebreaker`` (unique) in the same direction: pages never overlap."""
    key = columns[sort.lstrip("-")]()
    if sort.startswith("-"):
        return query.order_by(key.desc(), tiebreaker.desc())
    return query.order_by(key.asc(), tiebreaker.asc())
