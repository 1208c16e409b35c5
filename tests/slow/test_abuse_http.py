"""Abuse and faults over real HTTP (gunicorn), where the behaviour lives in the server
(issue 16): Redis down or hung, S3 hung, a chunked body over the limit.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from tests.slow.support import Api, assert_http_error, free_port, libpq_dsn

pytestmark = pytest.mark.slow

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis or S3)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in [*accepted, listener]:
        sock.close()


def _timed(call) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.parametrize("redis", ["refused", "hung"])
def test_redis_out_of_reach_is_a_503_within_a_second(new_database, gunicorn, hung_port, redis):
    port = hung_port if redis == "hung" else free_port()
    server = gunicorn(
        database_url=libpq_dsn(new_database()),
        environment="production",
        workers=2,
        RATELIMIT_ENABLED="true",
        REDIS_URL=f"redis://127.0.0.1:{port}/8",
    )
    api = Api(server.base_url, timeout=40)
    calls = [
        lambda: api.login("ada"),
        lambda: api.register("ada"),
        lambda: api.post("/api/v1/auth/refresh", headers={"Authorization": "Bearer x.y.z"}),
        lambda: api.get("/health/ready"),
    ]
    for call in calls * 2:  # both workers
        response, elapsed = _timed(call)
        assert elapsed < 1.5, (response.request.url, elapsed)
        assert_http_error(response, 503)
        assert response.headers["Retry-After"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert api.get("/health").status_code == 200
    assert "Traceback" not in server.log()


def test_s3_hung_is_a_503_within_10_seconds(new_database, gunicorn, hung_port):
    server = gunicorn(
        database_url=libpq_dsn(new_database()),
        workers=1,
        STORAGE_BACKEND="s3",
        S3_BUCKET="pictures",
        S3_REGION="us-east-1",
        S3_ENDPOINT_URL=f"http://127.0.0.1:{hung_port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    api = Api(server.base_url, timeout=40)
    account = api.account("pictured")
    image = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(image, "PNG")
    response, elapsed = _timed(
        lambda: api.put(
            "/api/v1/users/me/picture",
            files={"file": ("a.png", image.getvalue(), "image/png")},
            headers=account.headers,
        )
    )
    assert elapsed < 10, elapsed
    assert_http_error(response, 503)
    me = api.get("/api/v1/users/me", headers=account.headers).json()
    assert me["profile_picture_url"] is None


def test_a_chunked_json_body_over_the_limit_is_413(new_database, gunicorn):
    server = gunicorn(database_url=libpq_dsn(new_database()), workers=1)
    api = Api(server.base_url)
    account = api.account("chunky")

    def chunks(padding: int, tail: bytes):
        yield b'{"name": "Physics"' + b" " * 1024
        for _ in range(padding // 65536):
            yield b" " * 65536
        yield tail

    # 2.5 MB of spaces inside the object, then what would make the JSON invalid, or the
    # end of a valid one: either way over the 64 KB limit, so 413, never a partial parse.
    for tail in (b"garbage", b"}"):
        response = api.post(
            "/api/v1/subjects/",
            data=chunks(2_500_000, tail),
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert "chunked" in response.request.headers.get("Transfer-Encoding", "")
        assert_http_error(response, 413)
    # Under the limit, chunked is fine.
    small = api.post(
        "/api/v1/subjects/",
        data=iter([b'{"name": ', b'"Physics"}']),
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert small.status_code == 201, small.text


# -- issue 32 item 1: indexing a note is linear in its text ---------------------------------


def test_hostile_notes_at_once_neither_fail_nor_stall_anyone(new_database, gunicorn):
    """Four notes of 100,000 characters that made PostgreSQL's parser rescan to their end
    after every character (15 s of database CPU each, then 503; /health and other users
    stalled): each is written at once, and nobody else waits."""
    from tests.slow.support import simultaneously

    server = gunicorn(database_url=libpq_dsn(new_database()), workers=4)
    api = Api(server.base_url, timeout=60)
    attacker, bystander = api.account("attacker"), api.account("bystander")
    subject = api.post("/api/v1/subjects/", json={"name": "x"}, headers=attacker.headers).json()
    bodies = [(p * (100_000 // len(p) + 1))[:100_000] for p in ("<!--", "a_", "@a1", "a1@")]
    url = f"/api/v1/subjects/{subject['id']}/notes"

    def write(index: int):
        return _timed(
            lambda: api.post(
                url, json={"title": "t", "body": bodies[index]}, headers=attacker.headers
            )
        )

    written: list = []
    thread = threading.Thread(target=lambda: written.extend(simultaneously(4, write)))
    thread.start()
    others = []
    while thread.is_alive():
        others.append(_timed(lambda: api.get("/health")))
        others.append(_timed(lambda: api.get("/api/v1/subjects/", headers=bystander.headers)))
    thread.join()
    assert [response.status_code for response, _ in written] == [201] * 4, written
    assert max(elapsed for _, elapsed in written) < 3, written
    assert all(response.status_code == 200 for response, _ in others)
    assert max(elapsed for _, elapsed in others) < 2, max(e for _, e in others)
