"""Proof under fire: what a user sees when the database or the object store misbehaves.

- The database's connections are killed between requests: the next request still works.
- The database goes away (a TCP proxy between gunicorn and PostgreSQL is cut): quick
  503s in the error shape, never a hang; once it is back, requests work again.
- A failure after the INSERT was flushed: a 500 (or 503) in the error shape, no half-written
  row, and the next request is unaffected.
- S3 unreachable or timing out on upload: 503, the old picture kept, no orphan object; a
  failed delete of the replaced picture does not fail the replace, and is logged.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from flask import Flask
from moto import mock_aws
from PIL import Image
from sqlalchemy import event, func, select
from sqlalchemy import exc as sa_exc

from eleva.data.db import db
from eleva.data.models import LoginSession, Note, User
from tests.conftest import AuthActions, assert_error_shape, requires_postgres
from tests.slow.support import (
    Api,
    TcpProxy,
    assert_http_error,
    libpq_dsn,
    simultaneously,
    terminate_connections,
)

pytestmark = pytest.mark.slow

# A request facing a dead database must be answered within this (the pool's connect
# timeout is 5 s).
BOUNDED = 10.0


# -- connections killed between requests ---------------------------------------------------


@requires_postgres
def test_killed_connections_are_replaced_before_the_next_request(new_database, gunicorn):
    database = new_database()
    server = gunicorn(database_url=libpq_dsn(database), environment="production", workers=2)
    api = Api(server.base_url)
    account = api.account("survivor")
    # Both workers hold pooled connections.
    warm = simultaneously(8, lambda _i: api.get("/api/v1/users/me", headers=account.headers))
    assert [r.status_code for r in warm] == [200] * 8

    for round_ in range(3):
        killed = terminate_connections(database)
        assert killed >= 1, "no app connection to kill: the test proves nothing"
        # The very next request, then a burst over both workers, all succeed.
        me = api.get("/api/v1/users/me", headers=account.headers)
        assert me.status_code == 200, me.text
        burst = simultaneously(8, lambda _i: api.get("/api/v1/users/me", headers=account.headers))
        assert [r.status_code for r in burst] == [200] * 8, [r.text for r in burst]
        terminate_connections(database)
        created = api.post(
            "/api/v1/subjects/", json={"name": f"Round {round_}"}, headers=account.headers
        )
        assert created.status_code == 201, created.text
        terminate_connections(database)
        assert api.get("/health/ready").status_code == 200
        terminate_connections(database)
        assert api.login(account.username).status_code == 200
    assert server.failures_since(0) == [], "a 5xx or a traceback in the server log"


# -- the database goes away, then comes back ------------------------------------------------


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@requires_postgres
def test_database_outage_is_a_quick_503_and_recovery_is_automatic(
    new_database, gunicorn, db_proxy: TcpProxy
):
    database = new_database()
    server = gunicorn(
        database_url=libpq_dsn(database, port=db_proxy.port),
        environment="production",
        workers=2,
    )
    api = Api(server.base_url, timeout=30)
    account = api.account("patient")
    warm = simultaneously(8, lambda _i: api.get("/api/v1/users/me", headers=account.headers))
    assert [r.status_code for r in warm] == [200] * 8
    assert db_proxy.open_connections >= 1

    db_proxy.stop()  # PostgreSQL "goes away": connections reset, new ones refused

    requests_during_outage = [
        lambda: api.get("/health/ready"),
        lambda: api.get("/api/v1/users/me", headers=account.headers),
        lambda: api.login(account.username),
        lambda: api.post("/api/v1/subjects/", json={"name": "Lost"}, headers=account.headers),
        lambda: api.register("newcomer"),
    ]
    # Several times each, so both workers (and their dead pooled connections) answer.
    for call in requests_during_outage * 3:
        response, elapsed = _timed(call)
        assert elapsed < BOUNDED, (
            f"{response.request.method} {response.request.url}: {elapsed:.1f}s"
        )
        body = assert_http_error(response, 503)
        assert response.headers.get("Retry-After")
        assert "password" not in response.text and "postgres" not in body["message"].lower()
    burst = simultaneously(
        8, lambda _i: _timed(lambda: api.get("/api/v1/users/me", headers=account.headers))
    )
    for response, elapsed in burst:
        assert elapsed < BOUNDED
        assert_http_error(response, 503)
    # Liveness does not depend on the database: the platform must not restart the app.
    assert api.get("/health").status_code == 200

    db_proxy.start()  # PostgreSQL is back

    assert api.get("/health/ready").status_code == 200
    me = api.get("/api/v1/users/me", headers=account.headers)
    assert me.status_code == 200, me.text
    burst = simultaneously(8, lambda _i: api.get("/api/v1/users/me", headers=account.headers))
    assert [r.status_code for r in burst] == [200] * 8, [r.text for r in burst]
    assert api.login(account.username).status_code == 200
    assert api.register("newcomer").status_code == 201
    created = api.post("/api/v1/subjects/", json={"name": "Found"}, headers=account.headers)
    assert created.status_code == 201, created.text
    # Nothing was half-written during the outage.
    listed = api.get("/api/v1/subjects/", headers=account.headers).json()
    assert [s["name"] for s in listed] == ["Found"]
    # The outage was logged (with the cause) and answered 503, nothing worse.
    assert {code for code in server.statuses_since(0) if code >= 500} == {503}


# -- a failure after the INSERT was flushed -------------------------------------------------


@contextmanager
def failing_once_after_flush(error: Exception) -> Iterator[list[str]]:
    """The next flush that writes rows raises ``error`` after the SQL was sent — as a
    bug in a later step, or a connection lost at COMMIT, would."""
    fired: list[str] = []

    def fail(session, _flush_context) -> None:
        if not fired:
            fired.append(", ".join(sorted({type(o).__name__ for o in session.new})))
            raise error

    event.listen(db.session, "after_flush", fail)
    try:
        yield fired
    finally:
        event.remove(db.session, "after_flush", fail)


def _count(app: Flask, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


FLUSH_FAILURES = [
    pytest.param(RuntimeError("injected failure after flush"), 500, id="bug-500"),
    pytest.param(
        sa_exc.OperationalError(
            "COMMIT", {}, Exception("server closed the connection unexpectedly")
        ),
        503,
        id="connection-lost-503",
    ),
]


@pytest.mark.parametrize(("error", "status"), FLUSH_FAILURES)
def test_failure_after_flush_leaves_no_note_and_the_next_request_works(make_app, error, status):
    # A note's create is a transaction of several statements (the subject checked, the
    # note inserted, its counter moved); a subject's create is one INSERT, atomic alone.
    app = make_app()
    client = app.test_client()
    user = AuthActions(client).account("ada")
    subject = client.post("/api/v1/subjects/", json={"name": "Physics"}, headers=user.headers)
    notes = f"/api/v1/subjects/{subject.json['id']}/notes"
    with failing_once_after_flush(error) as fired:
        response = client.post(notes, json={"title": "Waves"}, headers=user.headers)
    assert fired == ["Note"], "the fault was not injected where intended"
    body = assert_error_shape(response, status)
    assert "injected" not in body["message"] and "COMMIT" not in body["message"]
    assert _count(app, Note) == 0
    assert client.get(notes, headers=user.headers).json == []
    assert (
        client.get(f"/api/v1/subjects/{subject.json['id']}", headers=user.headers).status_code
        == 200
    )

    again = client.post(notes, json={"title": "Waves"}, headers=user.headers)
    assert again.status_code == 201, again.json
    assert _count(app, Note) == 1


@pytest.mark.parametrize(("error", "status"), FLUSH_FAILURES)
def test_failure_after_flush_leaves_no_half_registered_user(make_app, error, status):
    app = make_app()
    client = app.test_client()
    auth = AuthActions(client)
    with failing_once_after_flush(error) as fired:
        response = auth.register("ada")
    assert fired == ["User"]
    assert_error_shape(response, status)
    assert _count(app, User) == 0
    assert_error_shape(auth.login("ada"), 401)

    # The same email and username are free: nothing half-written holds them.
    again = auth.register("ada")
    assert again.status_code == 201, again.json
    assert auth.login("ada@example.com").status_code == 200
    assert _count(app, User) == 1


@pytest.mark.parametrize(("error", "status"), FLUSH_FAILURES)
def test_failure_after_flush_at_login_starts_no_session(make_app, error, status):
    app = make_app()
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.register("ada").status_code == 201
    with failing_once_after_flush(error) as fired:
        response = auth.login("ada")
    assert fired == ["LoginSession"]
    assert_error_shape(response, status)
    assert _count(app, LoginSession) == 0
    assert auth.login("ada").status_code == 200
    assert _count(app, LoginSession) == 1


# -- object storage faults (moto) ------------------------------------------------------------

BUCKET = "eleva-slow-tests"


@pytest.fixture
def s3_app(make_app, monkeypatch) -> Iterator[Flask]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield make_app(env={"STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_REGION": "us-east-1"})


def _keys() -> list[str]:
    listing = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def _picture(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


def _upload(client, user, color: str = "red"):
    return client.put(
        "/api/v1/users/me/picture",
        data={"file": (io.BytesIO(_picture(color)), "me.png", "image/png")},
        headers=user.headers,
        content_type="multipart/form-data",
    )


def _key_of(url: str) -> str:
    return url.split(f"{BUCKET}.s3.us-east-1.amazonaws.com/", 1)[1]


def _raising(error: Exception):
    def call(*_args, **_kwargs):
        raise error

    return call


STORE_FAILURES = [
    pytest.param(
        EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), id="unreachable"
    ),
    pytest.param(ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"), id="read-timeout"),
    pytest.param(
        ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com"), id="connect-timeout"
    ),
    pytest.param(
        ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your rate"}}, "PutObject"),
        id="throttled",
    ),
]


@pytest.mark.parametrize("error", STORE_FAILURES)
def test_upload_when_storage_fails_is_503_and_keeps_the_old_picture(s3_app, monkeypatch, error):
    client = s3_app.test_client()
    user = AuthActions(client).account("ada")
    first = _upload(client, user, "red")
    assert first.status_code == 200, first.json
    old_url = first.json["profile_picture_url"]
    assert _keys() == [_key_of(old_url)]

    backend = s3_app.extensions["eleva.storage"]
    monkeypatch.setattr(backend.client, "put_object", _raising(error))
    response = _upload(client, user, "blue")

    body = assert_error_shape(response, 503)
    assert response.headers["Retry-After"]
    assert "storage" in body["message"].lower()
    assert (
        client.get("/api/v1/users/me", headers=user.headers).json["profile_picture_url"] == old_url
    )
    assert _keys() == [_key_of(old_url)]  # no orphan

    # A user without a picture keeps none.
    newcomer = AuthActions(client).account("grace")
    assert_error_shape(_upload(client, newcomer), 503)
    me = client.get("/api/v1/users/me", headers=newcomer.headers).json
    assert me["profile_picture_url"] is None
    assert _keys() == [_key_of(old_url)]


def test_failed_delete_of_the_replaced_picture_does_not_fail_the_replace(
    s3_app, monkeypatch, caplog
):
    client = s3_app.test_client()
    user = AuthActions(client).account("ada")
    old_url = _upload(client, user, "red").json["profile_picture_url"]
    backend = s3_app.extensions["eleva.storage"]
    monkeypatch.setattr(
        backend.client,
        "delete_object",
        _raising(EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")),
    )
    with caplog.at_level(logging.WARNING, logger="eleva.pictures"):
        response = _upload(client, user, "blue")

    assert response.status_code == 200, response.json
    new_url = response.json["profile_picture_url"]
    assert new_url != old_url
    assert (
        client.get("/api/v1/users/me", headers=user.headers).json["profile_picture_url"] == new_url
    )
    assert _key_of(new_url) in _keys()
    logged = [r for r in caplog.records if r.name == "eleva.pictures"]
    assert any(_key_of(old_url) in r.getMessage() for r in logged), [r.getMessage() for r in logged]


def test_failed_commit_after_upload_leaves_no_orphan_object(s3_app):
    client = s3_app.test_client()
    user = AuthActions(client).account("ada")
    old_url = _upload(client, user, "red").json["profile_picture_url"]

    with failing_once_after_flush(RuntimeError("injected failure after flush")):
        response = _upload(client, user, "blue")

    assert_error_shape(response, 500)
    assert (
        client.get("/api/v1/users/me", headers=user.headers).json["profile_picture_url"] == old_url
    )
    assert _keys() == [_key_of(old_url)]  # the new object was deleted again


def test_removing_a_picture_when_storage_fails_still_removes_it_for_the_user(
    s3_app, monkeypatch, caplog
):
    client = s3_app.test_client()
    user = AuthActions(client).account("ada")
    old_url = _upload(client, user, "red").json["profile_picture_url"]
    backend = s3_app.extensions["eleva.storage"]
    monkeypatch.setattr(
        backend.client, "delete_object", _raising(ReadTimeoutError(endpoint_url="https://s3"))
    )
    with caplog.at_level(logging.WARNING, logger="eleva.pictures"):
        response = client.delete("/api/v1/users/me/picture", headers=user.headers)
    assert response.status_code == 204
    assert client.get("/api/v1/users/me", headers=user.headers).json["profile_picture_url"] is None
    assert any(_key_of(old_url) in r.getMessage() for r in caplog.records)
