"""Engines and connections (eleva/data/db.py): every transaction sets its own settings
(nothing relies on a server connection's session state), no server-side prepared
statements, and dead pooled connections replaced without a ping."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from eleva.data.db import db
from tests.conftest import TEST_DATABASE_URL, requires_postgres

ME = "/api/v1/users/me"


@requires_postgres
@pytest.mark.config(DATABASE_STATEMENT_TIMEOUT_MS=300, DATABASE_LOCK_TIMEOUT_MS=200)
def test_every_transaction_sets_its_own_timeouts(app):
    with app.app_context():
        for _ in range(2):  # a second transaction on the same pooled connection too
            settings = db.session.execute(
                text("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
            ).one()
            assert tuple(settings) == ("300ms", "200ms")
            db.session.commit()
        # Only for its transaction: the server connection keeps nothing of it (a pooler
        # may hand it to another client next).
        with db.engine.connect() as conn:
            driver = conn.connection.driver_connection
            conn.commit()
            assert driver.execute("SHOW statement_timeout").fetchone()[0] != "300ms"
            driver.rollback()
        with pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(text("SELECT pg_sleep(2)"))
        db.session.rollback()


@requires_postgres
def test_a_transaction_begins_as_sqlalchemy_asked_then_as_the_default(app):
    """BEGIN is eleva.data.db's (psycopg in autocommit sends none): it carries the
    isolation level and read-only mode set on the connection, and the next transaction
    on the same pooled connection is back to the defaults."""
    now = text(
        "SELECT current_setting('transaction_isolation'), "
        "current_setting('transaction_read_only'), current_setting('TimeZone'), now()"
    )
    with app.app_context():
        snapshot = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        with db.engine.connect().execution_options(**snapshot) as conn:
            isolation, read_only, zone, first = conn.execute(now).one()
            assert (isolation, read_only, zone) == ("repeatable read", "on", "UTC")
            assert conn.execute(now).one()[3] == first  # one transaction, not autocommit
        for _ in range(2):
            isolation, read_only, zone, _ = db.session.execute(now).one()
            assert (isolation, read_only, zone) == ("read committed", "off", "UTC")
            db.session.commit()


@requires_postgres
@pytest.mark.config(DATABASE_STATEMENT_TIMEOUT_MS=300, DATABASE_LOCK_TIMEOUT_MS=20000)
def test_the_callers_check_holds_the_timeouts_too(app, client, user):
    """Every request's caller check runs outside the request's transaction (one round
    trip, eleva.data.fastread): its statement carries the same timeouts. A migration
    holding the users table makes it wait; it is cancelled, 503, and nothing stays set."""
    dsn = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = client.get(ME, headers=user.headers)
        waited = time.monotonic() - started
        holder.rollback()
    assert response.status_code == 503, response.json
    assert waited < 3
    assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context():
        pooled = db.engine.raw_connection()  # what the check used, back in the pool
        try:
            pooled.driver_connection.autocommit = True
            shown = pooled.driver_connection.execute("SHOW statement_timeout").fetchone()
            assert shown[0] != "300ms"
            pooled.driver_connection.autocommit = False
        finally:
            pooled.close()


@requires_postgres
def test_no_server_side_prepared_statements(app, client, user):
    """psycopg would prepare a statement on its fifth run: behind a transaction pooler the
    next run may reach a server connection that never prepared it."""
    for _ in range(8):
        assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context(), db.engine.connect() as conn:
        prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()
    assert prepared == 0


# -- PostgreSQL: dead pooled connections ---------------------------------------------------


def _app_backends(admin: psycopg.Connection) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ).fetchall()
    return [pid for (pid,) in rows]


@requires_postgres
def test_a_pooled_connection_the_server_ended_is_replaced_before_use(app, client, user):
    with app.app_context():
        engine = db.engine
    assert engine.pool._pre_ping is False  # the check below is the only guard
    assert client.get(ME, headers=user.headers).status_code == 200
    dsn = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        pooled = _app_backends(admin)
        assert pooled, "no pooled connection to end: the test would prove nothing"
        for pid in pooled:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while set(_app_backends(admin)) & set(pooled):
            assert time.monotonic() < deadline, "the server did not end the connections"
            time.sleep(0.01)
        # Every pooled connection is dead now; each request must get a live one.
        for i in range(3):
            assert client.get(ME, headers=user.headers).status_code == 200
            response = client.post(
                "/api/v1/subjects/", json={"name": f"S{i}"}, headers=user.headers
            )
            assert response.status_code == 201
        assert not set(_app_backends(admin)) & set(pooled)
