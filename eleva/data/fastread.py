"""Fast reads: a SELECT of committed data, run without the ORM.

On PostgreSQL a ``FastRead`` runs straight on psycopg, on a connection each thread keeps
across requests (autocommit, generic plans, one cursor). Elsewhere (SQLite: development
and tests) it runs through the request's session. Either way it reads committed data,
outside any transaction this request has open: use it for reads that do not depend on
the request's own uncommitted writes (authentication, lists). bench/README.md has the
figures that make it worth its ~150 lines.

A ``FastWrite`` is the same for one INSERT, UPDATE or DELETE … RETURNING that is a whole
transaction by itself (one statement is atomic, its triggers included): on PostgreSQL it
runs in autocommit on that connection, without the BEGIN and COMMIT round trips and the
session a transaction needs; elsewhere through the session, then committed. A violated
unique index is a 409, as with ``commit()``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, Select, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.sql.dml import UpdateBase

from eleva.data.db import check_postgres_alive, db, unique_conflicts
from eleva.data.models import UTCDateTime

T = TypeVar("T")

# Called with (driver connection, SQL, parameters) for each statement a FastRead sends
# straight to the driver, which SQLAlchemy's events do not see: the tests count them.
DIRECT_STATEMENT_LISTENERS: list[Callable[[Any, str, Mapping[str, Any]], None]] = []

# psycopg prepares a statement on its fifth run, but PostgreSQL would still plan each
# execution anew whenever a custom plan looks cheaper, which for these key lookups and
# index walks it always does. Their plan does not depend on the values: plan once.
GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"
# Timestamps in UTC, named "UTC": psycopg then returns them with datetime.UTC itself
# (for any other name, a ZoneInfo), which is what Eléva hands out, without a conversion
# per value (a list of 20 has 40).
UTC_SESSION = "SET TimeZone = 'UTC'"


class FastRead(Generic[T]):
    """A prepared SELECT; ``make_row`` builds each result from its values, in order."""

    def __init__(self, statement: Select | UpdateBase, make_row: Callable[..., T]) -> None:
        self.statement = statement
        self.make_row = make_row
        self._compiled: tuple[str, dict[str, Any], list[int]] | None = None

    def all(self, **params: Any) -> list[T]:
        cursor = self._execute(params)
        if cursor is None:
            return [self.make_row(*row) for row in db.session.execute(self.statement, params)]
        return [self._row(values) for values in cursor.fetchall()]

    def first(self, **params: Any) -> T | None:
        cursor = self._execute(params)
        if cursor is None:
            row = db.session.execute(self.statement, params).first()
            return None if row is None else self.make_row(*row)
        values = cursor.fetchone()
        return None if values is None else self._row(values)

    def _execute(self, params: dict[str, Any]) -> Any:
        engine = db.engine
        if engine.dialect.driver != "psycopg":
            return None
        cursor = _READ_CONNECTIONS.cursor(engine)
        if self._compiled is None:
            compiled = self.statement.compile(dialect=engine.dialect)
            columns = self.statement.exported_columns  # selected, or RETURNING
            utc = [i for i, column in enumerate(columns) if isinstance(column.type, UTCDateTime)]
            self._compiled = (compiled.string, dict(compiled.params), utc)
        sql, defaults, _utc = self._compiled
        params = {**defaults, **params}
        for listener in DIRECT_STATEMENT_LISTENERS:
            listener(cursor.connection, sql, params)
        return cursor.execute(sql, params)

    def _row(self, values: Sequence[Any]) -> T:
        row = list(values)
        for i in self._compiled[2] if self._compiled else ():  # as UTCDateTime returns them
            value = row[i]
            if value is not None and value.tzinfo is not UTC:
                row[i] = value.astimezone(UTC)
        return self.make_row(*row)


class FastWrite(FastRead[T]):
    """One writing statement with RETURNING, committed on its own (see the module).

    Not for a request whose session already holds row locks or uncommitted writes: this
    runs on another connection, which would wait for them (or miss them).
    """

    def first(self, **params: Any) -> T | None:
        with unique_conflicts():
            cursor = self._execute(params)
            if cursor is None:
                row = db.session.execute(self.statement, params).first()
                db.session.commit()
                return None if row is None else self.make_row(*row)
            values = cursor.fetchone()
        return None if values is None else self._row(values)

    def all(self, **params: Any) -> list[T]:
        raise NotImplementedError("a FastWrite returns its one row: use first()")


class ReadConnections:
    """One autocommit psycopg connection per engine and thread, kept across requests.

    Opened through the engine's pool (same connect arguments, the liveness check), then
    detached from it; checked for liveness before each use, and closed with the engine.
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
            fairy = engine.raw_connection()
            driver: Any = fairy.dbapi_connection
            try:
                driver.autocommit = True
                cursor = driver.cursor()
                cursor.execute(GENERIC_PLANS)
                cursor.execute(UTC_SESSION)
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


def _usable(fairy: Any) -> bool:
    if not fairy.is_valid:
        return False
    try:
        check_postgres_alive(fairy.dbapi_connection)
    except DisconnectionError:
        return False
    return True


_READ_CONNECTIONS = ReadConnections()
