"""The read every request makes (who is calling), in one round trip, exact.

It reads committed rows on every call: nothing is kept. On PostgreSQL it runs outside the
request's transaction; elsewhere (SQLite) through the request's session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import psycopg
from flask import current_app
from sqlalchemy import Select

from eleva.data.db import db, transaction_settings

T = TypeVar("T")

# Called with (driver connection, SQL) for each statement a FastRead sends to the driver,
# which SQLAlchemy's events do not see: the tests' statement counter.
STATEMENT_LISTENERS: list[Callable[[Any, str], None]] = []


class FastRead(Generic[T]):
    """A SELECT of one row by bound parameters; ``make_row`` builds the answer from the
    row's values, in order. For reads that never depend on the request's own writes."""

    def __init__(self, statement: Select[Any], make_row: Callable[..., T]) -> None:
        self.statement = statement
        self.make_row = make_row
        self._sql: dict[str, tuple[str, dict[str, Any]]] = {}  # by dialect

    def first(self, **params: Any) -> T | None:
        engine = db.engine
        if engine.dialect.name != "postgresql":
            row = db.session.execute(self.statement, params).first()
            return None if row is None else self.make_row(*row)
        # On a pooled connection in autocommit (eleva.data.db), the transaction's settings
        # and the SELECT go as one simple query (SET LOCAL …; SELECT …: one implicit
        # transaction): the timeouts hold behind a transaction pooler, nothing stays set.
        sql, defaults = self._compiled(engine.dialect)
        config = current_app.config
        settings = transaction_settings(
            statement_timeout_ms=config["DATABASE_STATEMENT_TIMEOUT_MS"],
            lock_timeout_ms=config["DATABASE_LOCK_TIMEOUT_MS"],
        )
        fairy = engine.raw_connection()  # the pool's checkout: liveness checked there
        try:
            driver: psycopg.Connection[Any] = fairy.driver_connection  # type: ignore[assignment]
            if not driver.autocommit:  # a new connection, or one SQLAlchemy reset
                driver.autocommit = True
            cursor = psycopg.ClientCursor(driver)  # client-side binding: one Query
            for listener in STATEMENT_LISTENERS:
                listener(driver, sql)
            cursor.execute(f"{settings}; {sql}", {**defaults, **params})
            while cursor.nextset():  # past the SETs' results
                pass
            values = cursor.fetchone()
        finally:
            fairy.close()  # back to the pool, idle: nothing to roll back
        return None if values is None else self.make_row(*map(_utc, values))

    def _compiled(self, dialect: Any) -> tuple[str, dict[str, Any]]:
        compiled = self._sql.get(dialect.name)
        if compiled is None:
            statement = self.statement.compile(dialect=dialect)
            compiled = self._sql[dialect.name] = (statement.string, dict(statement.params))
        return compiled


def _utc(value: Any) -> Any:
    # Timestamps as the ORM hands them out (UTCDateTime): in UTC, whatever the server's
    # TimeZone setting, which the pooled connection's session may not have set.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
