"""Helpers shared by the services for talking to the database."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any, Generic, TypeVar

from flask import g
from sqlalchemy import Connection, Engine, Select, event
from sqlalchemy.exc import DisconnectionError, IntegrityError

from eleva.database import autocommit, check_postgres_alive, read_only_request
from eleva.errors import Conflict
from eleva.extensions import db
from eleva.models import UTCDateTime

T = TypeVar("T")

_SQLITE_INDEX_RE = re.compile(r"UNIQUE constraint failed: index '([^']+)'")


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the unique index/constraint an IntegrityError is about, if known."""
    diag = getattr(exc.orig, "diag", None)  # psycopg
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name
    match = _SQLITE_INDEX_RE.search(str(exc.orig))
    return match.group(1) if match else None


def commit_unique(fields: Mapping[str, tuple[str, str]]) -> None:
    """Commit; a violated unique index in ``fields`` becomes a 409 naming the field.

    ``fields`` maps an index name to (field name, what to call it in the message). The
    database's constraint is the guarantee of uniqueness, whatever ran concurrently.
    """
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        name = violated_constraint(exc)
        if name not in fields:
            raise
        field, what = fields[name]
        raise Conflict.taken(field, what) from None


# Called with (driver connection, SQL, parameters) for each statement a HotSelect sends
# straight to the driver, which SQLAlchemy's events do not see: the tests and
# bench.queries count them.
DIRECT_STATEMENT_LISTENERS: list[Callable[[Any, str, Mapping[str, Any]], None]] = []


class HotSelect(Generic[T]):
    """A SELECT of a hot read-only endpoint (authentication, the subject list).

    On PostgreSQL it runs straight on psycopg, on the worker's own connection
    (``ReadConnections``): compiled once, parameters adapted by the driver (ints, text,
    UUIDs, aware datetimes), timestamps normalised to UTC as ``UTCDateTime`` does. Under
    load a ``SELECT 1`` through SQLAlchemy cost a gunicorn worker ~470 µs of CPU, on the
    driver ~130 µs: more than the rest of a small GET (``bench.db_paths``). Elsewhere
    (SQLite: development, tests) it runs through SQLAlchemy Core. The test suite runs on
    both. ``make_row`` builds each result from the selected values, in order.
    """

    def __init__(self, statement: Select, make_row: Callable[..., T]) -> None:
        self.statement = statement
        self.make_row = make_row
        self._compiled: tuple[str, dict[str, Any], list[Any]] | None = None

    def all(self, **params: Any) -> list[T]:
        cursor = self._execute(params)
        if cursor is None:
            return [
                self.make_row(*row) for row in _core_connection().execute(self.statement, params)
            ]
        return [self._row(values) for values in cursor.fetchall()]

    def first(self, **params: Any) -> T | None:
        cursor = self._execute(params)
        if cursor is None:
            row = _core_connection().execute(self.statement, params).first()
            return None if row is None else self.make_row(*row)
        values = cursor.fetchone()
        return None if values is None else self._row(values)

    def scalar(self, **params: Any) -> Any:
        cursor = self._execute(params)
        if cursor is None:
            return _core_connection().scalar(self.statement, params)
        values = cursor.fetchone()
        return None if values is None else values[0]

    def _execute(self, params: dict[str, Any]) -> Any:
        cursor = _driver_cursor()
        if cursor is None:
            return None
        if self._compiled is None:
            compiled = self.statement.compile(dialect=db.engine.dialect)
            columns = self.statement.selected_columns
            utc = [i for i, column in enumerate(columns) if isinstance(column.type, UTCDateTime)]
            self._compiled = (compiled.string, dict(compiled.params), utc)
        sql, defaults, _utc = self._compiled
        params = {**defaults, **params}
        for listener in DIRECT_STATEMENT_LISTENERS:
            listener(cursor.connection, sql, params)
        return cursor.execute(sql, params)

    def _row(self, values: Sequence[Any]) -> T:
        values = list(values)
        for i in self._compiled[2]:  # type: ignore[index]
            value = values[i]
            if value is not None and value.tzinfo is not UTC:  # UTC already: see config.py
                values[i] = value.astimezone(UTC)
        return self.make_row(*values)


def _driver_cursor() -> Any:
    """The psycopg cursor for this thread's hot reads (autocommit), or None off
    PostgreSQL."""
    if not read_only_request():
        raise RuntimeError("a HotSelect is for GET and HEAD requests")
    engine = db.engine
    if engine.dialect.driver != "psycopg":
        return None
    return _READ_CONNECTIONS.cursor(engine)


class ReadConnections:
    """One autocommit psycopg connection per engine and thread, kept across requests.

    Taking a connection from SQLAlchemy's pool and switching it to autocommit and back
    cost a gunicorn worker ~60 µs per request under load (``bench.db_paths``: 187 against
    130 µs for the round trip). A sync worker serves one request at a time, so it keeps one
    connection for its hot reads, opened by the engine (same connect arguments and
    timeouts), detached from the pool, and checked for liveness before each request
    that uses it the way pooled connections are (eleva.database). Closed with the
    engine (``Engine.dispose``). It keeps one cursor too: psycopg's
    ``Connection.execute`` makes a new one per call, 15 of a query's 40 µs in process.
    """

    def __init__(self) -> None:
        self._forget()
        # A forked child must not use its parent's sockets: it opens its own.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._local = threading.local()
        self._all: dict[Engine, list[Any]] = {}
        self._lock = threading.Lock()

    def cursor(self, engine: Engine) -> Any:
        held: dict[Engine, tuple[Any, Any]] = self._local.__dict__.setdefault("held", {})
        fairy, cursor = held.get(engine, (None, None))
        if fairy is not None and not _usable(fairy):
            self._discard(engine, fairy)
            fairy = None
        if fairy is None:
            fairy = engine.raw_connection()  # through the pool: connect args, liveness
            try:
                fairy.dbapi_connection.autocommit = True
                cursor = fairy.dbapi_connection.cursor()
                cursor.execute(GENERIC_PLANS)
            except Exception:
                fairy.invalidate()  # closed, and never back in the pool half set up
                raise
            fairy.detach()  # now ours: closed by us, not returned to the pool
            held[engine] = (fairy, cursor)
            with self._lock:
                if engine not in self._all:
                    event.listen(engine, "engine_disposed", self.close_all)
                self._all.setdefault(engine, []).append(fairy)
        return cursor

    def close_all(self, engine: Engine) -> None:
        # Other threads notice theirs closed (is_valid) and drop them on next use.
        self._local.__dict__.get("held", {}).pop(engine, None)
        with self._lock:
            fairies = self._all.pop(engine, [])
        for fairy in fairies:
            with contextlib.suppress(Exception):  # closing what may already be dead
                fairy.close()

    def _discard(self, engine: Engine, fairy: Any) -> None:
        self._local.held.pop(engine, None)
        with self._lock, contextlib.suppress(ValueError):
            self._all.get(engine, []).remove(fairy)
        with contextlib.suppress(Exception):
            fairy.close()


# psycopg prepares a statement on its fifth run; PostgreSQL then still plans every
# execution anew ("custom plans") whenever it estimates a custom plan cheaper than the
# generic one, which for these statements is always: a LIMIT or a timestamp parameter
# makes the generic estimate look worse. Planning the list's statement cost the server
# more than running it (~100 µs a request). The hot reads are key lookups and index walks
# whose plan does not depend on the values, so they are planned once per connection.
GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"


def _usable(fairy: Any) -> bool:
    if not fairy.is_valid:
        return False
    try:
        check_postgres_alive(fairy.dbapi_connection, None, None)
    except DisconnectionError:
        return False
    return True


_READ_CONNECTIONS = ReadConnections()


def _core_connection() -> Connection:
    connection = g.get("_eleva_core")
    if connection is None:
        connection = g._eleva_core = autocommit(db.engine).connect()
    return connection


def close_read_connections(_error: Any = None) -> None:
    """Teardown: give this request's Core read connection back to the pool."""
    connection = g.pop("_eleva_core", None)
    if connection is not None:
        connection.close()
