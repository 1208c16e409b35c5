"""How Eléva's engines and sessions are set up, per database.

Three things, each measured (bench/README.md, "Where the time went"):

- **SQLite** (development, tests): foreign keys on, a Unicode-aware ``lower()``.
- **PostgreSQL: a liveness check without a round trip.** ``pool_pre_ping`` sends a
  statement on every checkout: one more round trip per request, and the largest single
  cost of a small authenticated GET. A server that ends a connection (restart, failover,
  ``pg_terminate_backend``, an idle reaper) sends its FATAL message or closes the socket,
  so an idle pooled connection whose socket is readable is dead: the checkout hook sees
  that with a zero-timeout ``poll`` and hands SQLAlchemy a ``DisconnectionError``, which
  makes the pool replace the connection before it is used. A server that silently
  vanished is noticed by TCP keepalives and ``tcp_user_timeout`` (config.py), as a ping
  would have been.
- **Reads without a transaction.** A GET or HEAD request never writes, so its session
  runs each statement on its own (the driver's autocommit): no ``BEGIN`` before the first
  statement and no ``ROLLBACK`` when the connection goes back to the pool, two round trips
  fewer. Under READ COMMITTED a transaction gives each statement its own snapshot anyway,
  so reads see exactly what they saw before. A flush in such a request is a bug and
  raises.
"""

from __future__ import annotations

import select
import weakref
from typing import Any

import flask_sqlalchemy.session
from flask import has_request_context, request
from psycopg import pq
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

READ_ONLY_METHODS = frozenset({"GET", "HEAD"})

_autocommit_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def read_only_request() -> bool:
    return has_request_context() and request.method in READ_ONLY_METHODS


def autocommit(engine: Engine) -> Engine:
    """``engine`` in autocommit mode: the same pool, no transaction around statements."""
    try:
        return _autocommit_engines[engine]
    except KeyError:
        variant = _autocommit_engines[engine] = engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
        return variant


class Session(flask_sqlalchemy.session.Session):
    """Flask-SQLAlchemy's session; statements of read-only requests run in autocommit."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kw: Any) -> Any:
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kw)
        if bind is None and isinstance(engine, Engine) and read_only_request():
            return autocommit(engine)
        return engine


@event.listens_for(Session, "before_flush")
def _no_writes_in_read_only_requests(session: Session, _context: Any, _instances: Any) -> None:
    if read_only_request() and (session.new or session.dirty or session.deleted):
        raise RuntimeError(f"a {request.method} request must not write to the database")


def init_engines(engines: Any) -> None:
    for engine in engines:
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_on_connect)
        elif engine.dialect.name == "postgresql":
            event.listen(engine, "checkout", check_postgres_alive)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Cascades need foreign keys on; lower() is made Unicode-aware so that SQLite's
    # case-insensitive unique indexes and searches behave as PostgreSQL's do.
    dbapi_connection.create_function(
        "lower", 1, lambda s: s.lower() if isinstance(s, str) else s, deterministic=True
    )
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def check_postgres_alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled psycopg connection the server has ended (see the module doc)."""
    pgconn = dbapi_connection.pgconn
    if dbapi_connection.closed or pgconn.status != pq.ConnStatus.OK:
        raise DisconnectionError("connection closed")
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
    # An idle connection receives nothing unless the server is ending it (Eléva does
    # not LISTEN), so anything to read — a FATAL message, EOF, an error — means dead.
    if poller.poll(0):
        raise DisconnectionError("the server ended the connection")
