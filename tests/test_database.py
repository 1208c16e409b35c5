"""Engines and connections (eleva/data): fast reads without a transaction, writes inside
one, and dead pooled connections replaced without a ping."""

from __future__ import annotations

import time
from contextlib import contextmanager

import psycopg
import pytest

from eleva.data.db import db
from tests.conftest import (
    TEST_DATABASE_URL,
    requires_postgres,
    watch_statements,
)

ME = "/api/v1/users/me"


def _autocommit(dbapi_connection) -> bool:
    if isinstance(dbapi_connection, psycopg.Connection):
        return dbapi_connection.autocommit
    return dbapi_connection.isolation_level is None  # sqlite3's autocommit


@pytest.fixture
def transaction_modes(app):
    """``with transaction_modes() as modes``: for each statement, whether it ran in autocommit."""

    @contextmanager
    def recorder():
        modes: list[tuple[bool, str]] = []

        def record(driver_connection, statement: str) -> None:
            modes.append((_autocommit(driver_connection), statement.split()[0]))

        with watch_statements(app, record):
            yield modes

    return recorder


@requires_postgres
def test_fast_reads_and_single_statement_writes_run_alone_other_writes_in_a_transaction(
    app, client, user, transaction_modes
):
    app.config["SESSION_CHECK_KEEP_SECONDS"] = 0  # the caller checked by a statement
    with transaction_modes() as reads:
        assert client.get(ME, headers=user.headers).status_code == 200
        assert client.get("/api/v1/subjects/", headers=user.headers).status_code == 200
    assert reads and all(autocommit for autocommit, _ in reads), reads

    with transaction_modes() as create:
        created = client.post("/api/v1/subjects/", json={"name": "Maths"}, headers=user.headers)
        assert created.status_code == 201
    # The caller's check, then one INSERT … RETURNING: a transaction by itself (FastWrite).
    assert create == [(True, "SELECT"), (True, "INSERT")], create

    with transaction_modes() as writes:
        assert client.patch(ME, json={"bio": "hi"}, headers=user.headers).status_code == 200
    # A read then a write (the row locked, then updated): both inside one transaction.
    assert writes[0] == (True, "SELECT") and writes[1:], writes
    assert not any(autocommit for autocommit, _ in writes[1:]), writes


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


@requires_postgres
def test_hot_reads_are_planned_once_not_on_every_request(app, client, user):
    """Custom plans would re-plan the list's statement on every request (data.fastread)."""
    from eleva.data.fastread import _READ_CONNECTIONS

    app.config["SESSION_CHECK_KEEP_SECONDS"] = 0  # the caller's statement on every request

    client.post("/api/v1/subjects/", json={"name": "Physics"}, headers=user.headers)
    for _ in range(12):  # psycopg prepares a statement on its fifth run
        assert client.get("/api/v1/subjects/", headers=user.headers).status_code == 200
        assert client.get(ME, headers=user.headers).status_code == 200
    with app.test_request_context(ME, method="GET"):
        cursor = _READ_CONNECTIONS.cursor(db.engine)
        plans = cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        ).fetchall()
    hot = [plan for plan in plans if "login_sessions" in plan[0] or "FROM subjects" in plan[0]]
    assert len(hot) == 2, plans  # the list's statement and the caller's
    for statement, generic, custom in hot:
        assert generic >= 7 and custom == 0, (statement[:80], generic, custom)


@requires_postgres
def test_fast_reads_hand_out_utc_timestamps_as_read(app, client, user):
    """The read connection's session is in UTC by name: psycopg returns datetime.UTC
    itself, which needs no conversion (and formats fast, eleva.http.schemas)."""
    from datetime import UTC

    from eleva.data.fastread import _READ_CONNECTIONS
    from eleva.services.subjects import list_subjects

    client.post("/api/v1/subjects/", json={"name": "Physics"}, headers=user.headers)
    with app.test_request_context(ME, method="GET"):
        cursor = _READ_CONNECTIONS.cursor(db.engine)
        assert cursor.execute("SHOW TimeZone").fetchone() == ("UTC",)
        (row,) = list_subjects(user.id).items
    assert row.created_at.tzinfo is UTC and row.updated_at.tzinfo is UTC
    listed = client.get("/api/v1/subjects/", headers=user.headers).json[0]
    assert listed["created_at"] == row.created_at.isoformat()
    assert listed["created_at"].endswith("+00:00")
