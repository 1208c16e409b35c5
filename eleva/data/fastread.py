"""Fast reads: a SELECT of committed data, run without the ORM.

On PostgreSQL a ``FastRead`` runs straight on psycopg, on a connection each thread keeps
across requests (autocommit, generic plans, one cursor). Elsewhere (SQLite: development
and tests) it runs through the request's session. Either way it reads committed data,
outside any transaction this request has open: use it for reads that do not depend on
the request's own uncommitted writes (authentication, lists). bench/README.md has the
figures that make it worth its ~150 lines.

A ``KeptRead`` is a FastRead whose answers each thread keeps until the database says
they changed (PostgreSQL's LISTEN/NOTIFY, fed by triggers): the caller check of every
request, answered without a round trip.

A ``FastWrite`` is the same for one INSERT, UPDATE or DELETE … RETURNING that is a whole
transaction by itself (one statement is atomic, its triggers included): on PostgreSQL it
runs in autocommit on that connection, without the BEGIN and COMMIT round trips and the
session a transaction needs; elsewhere through the session, then committed. A violated
unique index is a 409, as with ``commit()``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any, Generic, TypeVar
from weakref import WeakSet

import psycopg
from psycopg import pq
from sqlalchemy import Engine, Select, event
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from eleva.data.db import db, unique_conflicts
from eleva.data.models import UTCDateTime

T = TypeVar("T")
log = logging.getLogger(__name__)

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

    resend_on_new_connection = True

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

    def _execute(self, params: dict[str, Any], held: _Held | None = None) -> Any:
        engine = db.engine
        if held is None:
            if engine.dialect.driver != "psycopg":
                return None
            held = _READ_CONNECTIONS.held(engine)
        cursor = held.cursor
        if self._compiled is None:
            compiled = self.statement.compile(dialect=engine.dialect)
            columns = self.statement.exported_columns  # selected, or RETURNING
            utc = [i for i, column in enumerate(columns) if isinstance(column.type, UTCDateTime)]
            self._compiled = (compiled.string, dict(compiled.params), utc)
        sql, defaults, _utc = self._compiled
        params = {**defaults, **params}
        try:
            return _send(cursor, sql, params)
        except psycopg.OperationalError as exc:
            # Checked alive just before, but ended by the server since (a restart, a
            # failover, an idle reaper): a read changed nothing, so it is sent once more
            # on a new connection. A write is not: whether it committed is unknown.
            if not self.resend_on_new_connection or not cursor.connection.broken:
                raise
            log.warning(
                "Read connection lost (%s): the read is sent on a new one.", type(exc).__name__
            )
        return _send(_READ_CONNECTIONS.held(engine).cursor, sql, params)  # the broken one replaced

    def _row(self, values: Sequence[Any]) -> T:
        row = list(values)
        for i in self._compiled[2] if self._compiled else ():  # as UTCDateTime returns them
            value = row[i]
            if value is not None and value.tzinfo is not UTC:
                row[i] = value.astimezone(UTC)
        return self.make_row(*row)


def _send(cursor: Any, sql: str, params: dict[str, Any]) -> Any:
    for listener in DIRECT_STATEMENT_LISTENERS:
        listener(cursor.connection, sql, params)
    return cursor.execute(sql, params)


class KeptRead(FastRead[T]):
    """A FastRead of one row whose answer each thread keeps until the database says it
    changed, for a read that every request repeats (who is calling).

    On PostgreSQL the thread's read connection LISTENs on ``channel``, and triggers on
    the tables read send it the ``group`` (e.g. the user id) of every row a transaction
    changed, when it commits, whatever wrote it (any instance, a job, plain SQL). Before
    answering from what it keeps, the thread reads what the server has delivered and
    forgets every answer of a group named there. An answer is kept at most ``max_age``
    seconds and never past ``keep_until(row)``: the net should a connection die without
    a sign. A change committed elsewhere reaches a thread as soon as the server sends its
    notification: requests that start meanwhile (typically well under a millisecond)
    still see the old row, as requests already past the check do without a cache.
    Elsewhere (SQLite) nothing is kept.

    After a commit of this process the next lookup asks the database (a fence): the
    server sends a statement's notifications before its result, so its own commits'
    are then read, and its next request never sees what it changed as it was. A
    FastWrite runs on the read connection itself and needs no fence.
    """

    def __init__(
        self,
        statement: Select,
        make_row: Callable[..., T],
        *,
        channel: str,
        group: str,
        key: tuple[str, ...],
        keep_until: Callable[[T], float],
    ) -> None:
        super().__init__(statement, make_row)
        self.channel = channel
        self.group = group
        self.key = key
        self.keep_until = keep_until

    def first(self, max_age: float = 0.0, **params: Any) -> T | None:
        """The row for ``params``; with ``max_age`` > 0, kept up to that many seconds."""
        engine = db.engine
        if max_age <= 0 or engine.dialect.driver != "psycopg":
            return super().first(**params)
        held = _READ_CONNECTIONS.held(engine)
        held.listen(self.channel)
        group = str(params[self.group])
        key = (self, *(params[name] for name in self.key))
        kept = held.kept.get(key)
        if kept is not None and kept[0] > time.monotonic() and not held.fence:
            return kept[1]
        changes = held.changes
        values = self._execute(params, held).fetchone()
        # PostgreSQL signals listeners as a transaction commits and sends their
        # notifications before a statement's end: this one brought every notification
        # of the commits this process made before it.
        held.fence = False
        row = None if values is None else self._row(values)
        # A notification read while the statement ran may be of a change it did not see.
        if row is not None and held.changes == changes:
            # Timed on the monotonic clock (a clock step must not stretch it), bounded by
            # the row's own deadline, which is wall-clock time.
            seconds = min(max_age, self.keep_until(row) - time.time())
            held.keep(self.channel, group, key, row, time.monotonic() + seconds)
        return row


class FastWrite(FastRead[T]):
    """One writing statement with RETURNING, committed on its own (see the module).

    Not for a request whose session already holds row locks or uncommitted writes: this
    runs on another connection, which would wait for them (or miss them).
    """

    resend_on_new_connection = False  # it may have committed before the connection died

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


class _Held:
    """A thread's read connection, its cursor, and what KeptReads keep on it.

    What is kept lives and dies with the connection: a new connection (the old one died,
    or the engine was disposed) starts with nothing kept and LISTENs anew before keeping.
    """

    def __init__(self, fairy: Any, cursor: Any, commits: int) -> None:
        self.fairy = fairy
        self.cursor = cursor
        self.listening: set[str] = set()
        self.kept: dict[tuple[Any, ...], tuple[float, Any]] = {}  # (monotonic deadline, row)
        self.groups: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
        self.changes = 0  # notifications handled: a KeptRead keeps only if none came in
        self.commits = commits  # this process's commits as of the last fence
        self.fence = False  # the next KeptRead must ask the database (see KeptRead)
        fairy.dbapi_connection.add_notify_handler(self._notified)

    def listen(self, channel: str) -> None:
        if channel not in self.listening:
            # Channel names are the code's own identifiers, never input.
            self.cursor.execute(f"LISTEN {channel}")
            self.listening.add(channel)

    def keep(self, channel: str, group: str, key: tuple[Any, ...], row: Any, until: float) -> None:
        if len(self.kept) >= MAX_KEPT:
            self.forget_all()
        self.kept[key] = (until, row)
        self.groups.setdefault((channel, group), set()).add(key)

    def forget_all(self) -> None:
        self.kept.clear()
        self.groups.clear()

    def _notified(self, notify: Any) -> None:
        # psycopg calls this for every notification it reads while a statement runs on
        # this connection; ``usable`` reads those that arrive between statements.
        self._forget_group(notify.channel, notify.payload)

    def _forget_group(self, channel: str, group: str) -> None:
        self.changes += 1
        if group == EVERY_GROUP:
            self.forget_all()
            return
        for key in self.groups.pop((channel, group), ()):
            self.kept.pop(key, None)

    def usable(self, commits: int) -> bool:
        """Alive, with every notification delivered so far handled.

        An idle connection receives nothing but notifications: a readable socket with
        none in it is the server's goodbye (a restart, a failover, an idle reaper).
        """
        if commits != self.commits:
            self.fence = True
            self.commits = commits
        if not self.fairy.is_valid:
            return False
        driver = self.fairy.dbapi_connection
        pgconn = driver.pgconn
        if driver.closed or pgconn.status != pq.ConnStatus.OK:
            return False
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
        if not poller.poll(0):
            return True
        changes = self.changes
        # Read until nothing is left: libpq takes one read at a time, and a server that
        # ends the connection just after a notification leaves its goodbye for the next.
        for _ in range(MAX_READS):
            try:
                pgconn.consume_input()
            except psycopg.OperationalError:  # the socket is gone
                return False
            while (notify := pgconn.notifies()) is not None:
                self._forget_group(notify.relname.decode(), notify.extra.decode())
            if pgconn.status != pq.ConnStatus.OK:
                return False
            if not poller.poll(0):
                return self.changes != changes
        return False  # still more to read: start afresh on a new connection


# Reads of what an idle connection received before it is given up for a new one.
MAX_READS = 16
# What one thread keeps at most; past it, all of it goes (a new page of callers).
MAX_KEPT = 4096
# The payload of a change that names no row (a TRUNCATE): forget everything.
EVERY_GROUP = "*"


class ReadConnections:
    """One autocommit psycopg connection per engine and thread, kept across requests.

    Opened through the engine's pool (same connect arguments, the liveness check), then
    detached from it; checked for liveness before each use, and closed with the engine.
    """

    def __init__(self) -> None:
        self._hooked: WeakSet[Engine] = WeakSet()  # engines whose disposal closes ours
        self._forget()
        # A forked child must not use its parent's sockets: it opens its own.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._local = threading.local()
        self._all: dict[Engine, list[Any]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._commits = 0

    def committed(self, _session: Any = None) -> None:
        """This process committed a write: each thread's next KeptRead asks the database.

        Called once the commit is done (a thread that asked before it must ask again),
        from any thread: each commit stores a number never stored before, so a thread
        comparing with the last one it saw cannot miss it, whatever the interleaving.
        """
        self._commits = next(self._counter)

    def cursor(self, engine: Engine) -> Any:
        return self.held(engine).cursor

    def held(self, engine: Engine) -> _Held:
        helds: dict[Engine, _Held] = self._local.__dict__.setdefault("held", {})
        held = helds.get(engine)
        if held is not None and not held.usable(self._commits):
            self._discard(engine, held.fairy)
            held = None
        if held is None:
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
            held = helds[engine] = _Held(fairy, cursor, self._commits)
            with self._lock:
                if engine not in self._hooked:
                    event.listen(engine, "engine_disposed", self.close_all)
                    self._hooked.add(engine)
                self._all.setdefault(engine, []).append(fairy)
        return held

    def close_all(self, engine: Engine) -> None:
        # Other threads notice theirs closed (is_valid) and drop them on next use.
        self._local.__dict__.get("held", {}).pop(engine, None)
        with self._lock:
            fairies = self._all.pop(engine, [])
        for fairy in fairies:
            _close(fairy)

    def _discard(self, engine: Engine, fairy: Any) -> None:
        self._local.held.pop(engine, None)
        with self._lock, contextlib.suppress(ValueError):
            self._all.get(engine, []).remove(fairy)
        _close(fairy)


def _close(fairy: Any) -> None:
    # Detached, so ours to close: the driver's connection itself. The pool's close() would
    # roll back first, which on a connection the server ended fails and logs a traceback.
    with contextlib.suppress(Exception):  # closing what may already be dead
        fairy.dbapi_connection.close()


_READ_CONNECTIONS = ReadConnections()
# Every commit of a session (the request's, a job's), once it is done: the fence.
event.listen(Session, "after_commit", _READ_CONNECTIONS.committed)
