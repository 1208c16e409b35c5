"""Proof under fire: a deploy (SIGTERM to gunicorn) lets requests in flight finish.

A slow request without a test-only route: the test holds a row lock on a subject
(``SELECT … FOR UPDATE``), so that a PATCH of that subject waits on it inside the app.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.conftest import requires_postgres
from tests.slow.support import Api, libpq_dsn, wait_for_lock_waiters

pytestmark = [pytest.mark.slow, requires_postgres]


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(new_database, gunicorn):
    database = new_database()
    server = gunicorn(database_url=libpq_dsn(database), workers=2)
    api = Api(server.base_url)
    account = api.account("deployer")
    subject = api.post("/api/v1/subjects/", json={"name": "Biology"}, headers=account.headers)
    assert subject.status_code == 201
    subject_id = subject.json()["id"]

    outcome: dict = {}

    def slow_patch() -> None:
        try:
            outcome["response"] = api.patch(
                f"/api/v1/subjects/{subject_id}",
                json={"description": "saved during the deploy"},
                headers=account.headers,
            )
        except Exception as exc:  # reported below, with the server's log
            outcome["error"] = exc

    with psycopg.connect(libpq_dsn(database)) as lock:
        lock.execute("SELECT id FROM subjects WHERE id = %s FOR UPDATE", (subject_id,))
        patcher = threading.Thread(target=slow_patch)
        patcher.start()
        wait_for_lock_waiters(database, 1)

        server.terminate()  # the deploy: SIGTERM to the master
        time.sleep(1.0)
        assert server.process.poll() is None, "gunicorn quit with a request in flight"
        lock.rollback()  # the slow request may now finish

    patcher.join(timeout=30)
    assert "error" not in outcome, (outcome.get("error"), server.log()[-3000:])
    response = outcome["response"]
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "saved during the deploy"
    assert server.wait(timeout=30) == 0, server.log()[-3000:]
    with psycopg.connect(libpq_dsn(database)) as conn:
        saved = conn.execute(
            "SELECT description FROM subjects WHERE id = %s", (subject_id,)
        ).fetchone()
    assert saved == ("saved during the deploy",)


def test_sigterm_when_idle_exits_0_promptly(new_database, gunicorn):
    server = gunicorn(database_url=libpq_dsn(new_database()), workers=2)
    assert Api(server.base_url).get("/health/ready").status_code == 200
    started = time.monotonic()
    assert server.stop(timeout=30) == 0, server.log()[-3000:]
    assert time.monotonic() - started < 10
