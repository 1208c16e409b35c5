"""Behind PgBouncer in transaction pooling, the API behaves as connected directly.

Each transaction may run on another server connection than the last, shared with other
clients: nothing the app relies on may live in a server connection's session (timeouts,
prepared statements, LISTEN). gunicorn as the Procfile runs it, two workers, PgBouncer
with two server connections.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.slow.support import (
    Api,
    PgBouncer,
    answered_by_every_worker,
    assert_http_error,
    libpq_dsn,
    start_pgbouncer,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def pooled(new_database, gunicorn, tmp_path: Path):
    """``pooled(**env)`` → (server, database, bouncer): the app connected through PgBouncer."""
    bouncers: list[PgBouncer] = []

    def start(**env: str):
        database = new_database()
        bouncer = start_pgbouncer(database, tmp_path)
        bouncers.append(bouncer)
        server = gunicorn(database_url=bouncer.dsn(database), workers=2, **env)
        return server, database, bouncer

    yield start
    for bouncer in bouncers:
        bouncer.stop()


def test_a_logged_out_token_is_refused_on_its_next_request_by_every_worker(pooled):
    server, _, _ = pooled()
    api = Api(server.base_url)
    account = api.account("pooled")
    answered_by_every_worker(server, api, account.headers, 200)

    assert api.post("/api/v1/auth/logout", headers=account.headers).status_code == 204
    answered_by_every_worker(server, api, account.headers, 401)


def every_route(api: Api, round_no: int) -> None:
    """One pass over the API's routes, each expected to succeed."""
    account = api.account(f"mix{round_no}")
    auth = account.headers

    def ok(response, status: int = 200):
        assert response.status_code == status, (response.request.method, response.text[:300])
        return response

    ok(api.get("/api/v1/users/me", headers=auth))
    ok(api.patch("/api/v1/users/me", json={"bio": f"round {round_no}"}, headers=auth))
    ok(api.get(f"/api/v1/users/{account.username}", headers=auth))
    subject = ok(api.post("/api/v1/subjects/", json={"name": "Maths"}, headers=auth), 201).json()
    sid = subject["id"]
    ok(api.get("/api/v1/subjects/?q=mat&sort=name", headers=auth))
    etag = ok(api.get(f"/api/v1/subjects/{sid}", headers=auth)).headers["ETag"]
    ok(
        api.patch(
            f"/api/v1/subjects/{sid}", json={"color": "#112233"}, headers=auth | {"If-Match": etag}
        )
    )
    note = ok(
        api.post(
            f"/api/v1/subjects/{sid}/notes", json={"title": "Sets", "body": "a ∪ b"}, headers=auth
        ),
        201,
    ).json()
    ok(api.get(f"/api/v1/subjects/{sid}/notes?sort=title", headers=auth))
    ok(api.patch(f"/api/v1/notes/{note['id']}", json={"body": "a ∩ b"}, headers=auth))
    files = {"file": ("sets.txt", b"intersection and union", "text/plain")}
    document = ok(
        api.post(f"/api/v1/subjects/{sid}/documents", files=files, headers=auth), 201
    ).json()
    ok(api.get(f"/api/v1/subjects/{sid}/documents", headers=auth))
    ok(api.get(f"/api/v1/documents/{document['id']}/download", headers=auth))
    ok(api.get("/api/v1/users/me/storage", headers=auth))
    ok(api.get("/api/v1/search?q=sets", headers=auth))
    ok(api.get("/api/v1/users/me/sessions", headers=auth))
    card = ok(
        api.post(
            f"/api/v1/subjects/{sid}/cards", json={"front": "∪?", "back": "union"}, headers=auth
        ),
        201,
    ).json()
    ok(
        api.post(
            f"/api/v1/subjects/{sid}/cards/bulk", json={"cards": [{"front": "∩?"}]}, headers=auth
        ),
        201,
    )
    review = {"rating": 3, "duration_ms": 1200}
    key = {"Idempotency-Key": f"k-{round_no}"}
    ok(api.post(f"/api/v1/cards/{card['id']}/reviews", json=review, headers=auth | key), 201)
    ok(api.post(f"/api/v1/cards/{card['id']}/reviews", json=review, headers=auth | key), 201)
    ok(api.get(f"/api/v1/cards/{card['id']}/reviews", headers=auth))
    ok(api.get(f"/api/v1/subjects/{sid}/cards?state=learning", headers=auth))
    ok(api.get("/api/v1/reviews/queue", headers=auth))
    ok(api.get("/api/v1/reviews/stats?days=7", headers=auth))
    ok(api.delete(f"/api/v1/cards/{card['id']}/reviews/last", headers=auth))
    ok(api.patch("/api/v1/users/me", json={"study": {"timezone": "Europe/Paris"}}, headers=auth))
    pair = ok(api.post("/api/v1/auth/refresh", headers=account.refresh_headers)).json()
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    ok(api.delete(f"/api/v1/documents/{document['id']}", headers=auth), 204)
    ok(api.delete(f"/api/v1/notes/{note['id']}", headers=auth), 204)
    ok(api.delete(f"/api/v1/subjects/{sid}", headers=auth), 204)
    ok(api.post("/api/v1/auth/logout", headers=auth), 204)


def test_every_route_answers_without_a_server_error(pooled):
    """psycopg would prepare a statement on its fifth run, under a name another client's
    server connection may already hold: every route, eight times, from four threads."""
    server, _, _ = pooled()
    api = Api(server.base_url)
    offset = server.log_size()
    errors: list[BaseException] = []

    def run(thread: int) -> None:
        try:
            for round_no in range(8):
                every_route(api, thread * 100 + round_no)
        except BaseException as exc:  # reported below, with the server's log
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, (errors[0], server.log()[-3000:])
    assert server.failures_since(offset) == []
    assert len(server.statuses_since(offset)) >= 4 * 8 * 30


@pytest.mark.parametrize(
    ("env", "which"),
    [
        (
            {"DATABASE_STATEMENT_TIMEOUT_MS": "500", "DATABASE_LOCK_TIMEOUT_MS": "20000"},
            "statement",
        ),
        ({"DATABASE_STATEMENT_TIMEOUT_MS": "20000", "DATABASE_LOCK_TIMEOUT_MS": "500"}, "lock"),
    ],
)
def test_timeouts_hold_behind_the_pooler(pooled, env, which):
    """A write waiting on a row another session holds is cancelled by the app's own
    timeout (set by each transaction for itself) and answers 503 in the error shape."""
    server, database, _ = pooled(**env)
    api = Api(server.base_url)
    account = api.account("timeouts")
    for _ in range(10):  # transactions spread over both server connections
        assert api.get("/api/v1/users/me", headers=account.headers).status_code == 200
    with psycopg.connect(libpq_dsn(database)) as holder:
        holder.execute("SELECT 1 FROM users WHERE username = %s FOR UPDATE", (account.username,))
        started = time.monotonic()
        response = api.patch("/api/v1/users/me", json={"bio": "waits"}, headers=account.headers)
        waited = time.monotonic() - started
        holder.rollback()
    body = assert_http_error(response, 503)
    assert waited < 5, f"the {which} timeout did not cancel the wait ({waited:.1f} s)"
    assert body["message"]
    # The server connection the cancel happened on serves the next transactions.
    for _ in range(6):
        assert api.get("/api/v1/users/me", headers=account.headers).status_code == 200


def test_no_session_state_is_left_on_the_pooled_server_connections(pooled):
    """After the app's transactions, the server connections PgBouncer shares carry none of
    the app's settings and no prepared statement (what another client would inherit)."""
    server, database, bouncer = pooled(DATABASE_STATEMENT_TIMEOUT_MS="1234")
    api = Api(server.base_url)
    account = api.account("state")
    for _ in range(10):
        assert api.get("/api/v1/subjects/", headers=account.headers).status_code == 200
    for _ in range(4):  # another client of the pooler, on the same two server connections
        with psycopg.connect(bouncer.dsn(database), autocommit=True) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] != "1234ms"
            assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
