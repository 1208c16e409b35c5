"""The database: Flask-SQLAlchemy's ``db``, engine set-up per database, and the commit
that turns a violated unique index into a 409.

Nothing relies on a PostgreSQL server connection keeping session state, so a transaction
pooler (PgBouncer) changes nothing.
"""

from __future__ import annotations

import re
import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask_sqlalchemy import SQLAlchemy
from psycopg import pq
from sqlalchemy import Engine, Index, MetaData, event
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import DeclarativeBase

from eleva.core.errors import Conflict
from eleva.core.search import fold
from eleva.core.study import day_start_text, study_day_of_text

# Deterministic constraint names, so migrations can name what they alter or drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects keep their values after commit: every value is set in Python, and reloading
# after the commit would race with concurrent writers (a PATCH answering for a row a
# DELETE removed right after it committed).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def unique_index(name: str, *expressions: Any, field: str, what: str | None = None) -> Index:
    """A unique index whose violation :func:`commit` answers as a 409 on ``field``."""
    return Index(name, *expressions, unique=True, info={"conflict": (field, what or field)})


_SQLITE_INDEX_RE = re.compile(r"UNIQUE constraint failed: index '([^']+)'")


def _violated_index(exc: Exception) -> str | None:
    error = getattr(exc, "orig", exc)  # SQLAlchemy's wrapper, or the driver's own error
    diag = getattr(error, "diag", None)  # psycopg
    if diag is not None and getattr(diag, "constraint_name", None):
        return str(diag.constraint_name)
    match = _SQLITE_INDEX_RE.search(str(error))
    return match.group(1) if match else None


def _conflict_fields() -> dict[str, tuple[str, str]]:
    return {
        index.name: index.info["conflict"]
        for table in db.metadata.tables.values()
        for index in table.indexes
        if index.name and "conflict" in index.info
    }


def commit() -> None:
    """Commit the session. A violated ``unique_index`` becomes a 409 naming its field.

    The database's index is the guarantee of uniqueness, whatever ran concurrently: no
    lookup before the insert can promise it.
    """
    with unique_conflicts():
        db.session.commit()


@contextmanager
def unique_conflicts() -> Iterator[None]:
    """A violated ``unique_index`` in the block (a statement or a commit, through the
    session or straight on psycopg) rolls back and becomes a 409 naming its field; any
    other IntegrityError goes on as it is."""
    try:
        yield
    except (IntegrityError, psycopg.IntegrityError) as exc:
        db.session.rollback()
        field = _conflict_fields().get(_violated_index(exc) or "")
        if field is None:
            raise
        raise Conflict.taken(*field) from None


# Settings every transaction needs, set for that transaction only (SET LOCAL): behind a
# transaction pooler each transaction may run on another server connection, which would
# not have kept a session's SET, nor the startup ``options`` a pooler drops.
def transaction_settings(*, statement_timeout_ms: int, lock_timeout_ms: int) -> str:
    # Integers from the configuration, never input: literals in one simple query.
    return (
        f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
        f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}; "
        "SET LOCAL TimeZone = 'UTC'"
    )


def is_begin(statement: str) -> bool:
    """Whether ``statement`` is a transaction's start (for statement counters)."""
    return statement.startswith("BEGIN")


def begin_statement(driver: Any, settings: str) -> str:
    """BEGIN as psycopg would send it (the isolation level and read-only mode SQLAlchemy
    set on the connection), then the transaction's settings: one simple query."""
    begin = "BEGIN"
    if driver.isolation_level is not None:
        level = psycopg.IsolationLevel(driver.isolation_level).name.replace("_", " ")
        begin += f" ISOLATION LEVEL {level}"
    if driver.read_only is not None:
        begin += " READ ONLY" if driver.read_only else " READ WRITE"
    return f"{begin}; {settings}"


def init_engines(engines: Any, *, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
    settings = transaction_settings(
        statement_timeout_ms=statement_timeout_ms, lock_timeout_ms=lock_timeout_ms
    )

    # SQLAlchemy's recipe for taking over a driver's BEGIN (its pysqlite notes): psycopg
    # in autocommit sends no BEGIN of its own, and this event sends BEGIN and the
    # settings in one round trip. commit() and rollback() go by the server's status.
    def start_transaction(conn: Any) -> None:
        driver = conn.connection.driver_connection
        if not driver.autocommit:
            driver.autocommit = True  # SQLAlchemy's isolation level reset turns it off
        conn.exec_driver_sql(
            begin_statement(driver, settings), execution_options={"no_parameters": True}
        )

    # SQLite (development, tests): foreign keys on, SQL functions it lacks. PostgreSQL: a
    # pooled connection checked for liveness at checkout, each transaction's own settings.
    for engine in engines:
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_on_connect)
        elif engine.dialect.name == "postgresql":
            event.listen(engine, "checkout", check_postgres_alive)
            event.listen(engine, "begin", start_transaction)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Cascades need foreign keys on; lower() is made Unicode-aware so that SQLite's
    # case-insensitive unique indexes and searches behave as PostgreSQL's do.
    dbapi_connection.create_function(
        "lower", 1, lambda s: s.lower() if isinstance(s, str) else s, deterministic=True
    )
    # Search without accents or case (eleva.services.search's fallback).
    dbapi_connection.create_function(
        "fold", 1, lambda s: fold(s) if isinstance(s, str) else s, deterministic=True
    )
    # A review's study day in the user's zone (eleva.services.study): PostgreSQL has
    # AT TIME ZONE, SQLite no time zones at all.
    dbapi_connection.create_function("study_day", 3, _study_day, deterministic=True)
    dbapi_connection.create_function("study_day_start", 4, _study_day_start, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def _study_day(stored: Any, timezone: Any, hour: Any) -> str | None:
    if not isinstance(stored, str) or not isinstance(timezone, str):
        return None
    return study_day_of_text(stored, timezone, int(hour))


def _study_day_start(day: Any, days_back: Any, timezone: Any, hour: Any) -> str | None:
    if not isinstance(day, str) or not isinstance(timezone, str):
        return None
    return day_start_text(day, int(days_back), timezone, int(hour))


def check_postgres_alive(dbapi_connection: Any, _record: Any = None, _proxy: Any = None) -> None:
    """Refuse a pooled psycopg connection that the server has ended; the pool then
    replaces it. No round trip, unlike ``pool_pre_ping``."""
    pgconn = dbapi_connection.pgconn
    if dbapi_connection.closed or pgconn.status != pq.ConnStatus.OK:
        raise DisconnectionError("connection closed")
    # A server that ends a connection (restart, failover, an idle reaper) sends its FATAL
    # message or closes the socket, and an idle connection receives nothing otherwise
    # (pooled connections do not LISTEN): a readable socket means dead, and a zero-timeout
    # poll sees it.
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError("the server ended the connection")


def dialect_name() -> str:
    engine: Engine = db.engine
    return engine.dialect.name
