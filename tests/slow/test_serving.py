"""Proof over real HTTP: the server as the Procfile runs it (gunicorn.conf.py, the worker
in eleva/serving.py) answers its own errors in the API's shape, is not stalled by slow
clients, and answers the connections queued in its backlog when a deploy stops it.

No database is needed: the requests here never reach one (SQLite file, no tables).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from eleva.serving import HSTS_HEADER, REQUEST_READ_TIMEOUT, SECURITY_HEADERS
from tests.slow.support import Server, assert_http_error, libpq_dsn

pytestmark = pytest.mark.slow

# Response headers that are about the transport or the one response, not its security.
# Vary: Origin is the app's CORS bookkeeping; the server's own errors carry no CORS headers.
NOT_SECURITY = {
    "content-type",
    "content-length",
    "date",
    "server",
    "connection",
    "x-request-id",
    "vary",
}


@pytest.fixture
def serve(gunicorn, tmp_path: Path):
    """``serve(**env)`` → gunicorn as the Procfile runs it, on a SQLite file."""

    def start(environment: str = "testing", workers: int = 2, **env: str) -> Server:
        url = f"sqlite:///{tmp_path / 'serving.sqlite3'}"
        return gunicorn(database_url=url, environment=environment, workers=workers, **env)

    return start


def port_of(server: Server) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def raw_request(server: Server, data: bytes, timeout: float = 10) -> http.client.HTTPResponse:
    """Send ``data`` as it is, read one response."""
    sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=timeout)
    sock.sendall(data)
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.body = response.read()  # type: ignore[attr-defined]
    sock.close()
    return response


def assert_error(response: http.client.HTTPResponse, status: int) -> dict:
    assert response.status == status, (response.status, response.body)  # type: ignore[attr-defined]
    assert response.getheader("Content-Type") == "application/json"
    body = json.loads(response.body)  # type: ignore[attr-defined]
    assert set(body) == {"code", "status", "message"}, body
    assert body["code"] == status
    return body


BAD_REQUESTS = {
    414: b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    431: b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    400: b"NOT HTTP AT ALL\r\n\r\n",
}


def test_gunicorns_own_errors_are_json_with_the_apps_security_headers(new_database, gunicorn):
    # Production refuses SQLite: this one runs on a PostgreSQL database of its own.
    server = gunicorn(database_url=libpq_dsn(new_database()), environment="production")
    # What the app itself sends with an error, in production (HSTS included).
    app_error = requests.get(server.url("/api/v1/no-such-thing"), timeout=10)
    assert_http_error(app_error, 404)
    app_headers = {k.lower(): v for k, v in app_error.headers.items()}
    app_security = {k: v for k, v in app_headers.items() if k not in NOT_SECURITY}
    # eleva/serving.py's copy of them, as a worker sends them in production.
    mirrored = {k.lower(): v for k, v in (*SECURITY_HEADERS, HSTS_HEADER)}
    assert mirrored == app_security, "eleva/serving.py's SECURITY_HEADERS drifted from the app's"

    for status, data in BAD_REQUESTS.items():
        response = raw_request(server, data)
        assert_error(response, status)
        sent = {k.lower(): v for k, v in response.getheaders()}
        assert {k: v for k, v in sent.items() if k not in NOT_SECURITY} == app_security, status
        assert len(sent["x-request-id"]) == 32
    assert server.process.poll() is None


def test_no_hsts_on_errors_outside_production(serve):
    server = serve(environment="testing")
    response = raw_request(server, BAD_REQUESTS[431])
    assert_error(response, 431)
    assert response.getheader("Strict-Transport-Security") is None
    app_error = requests.get(server.url("/api/v1/no-such-thing"), timeout=10)
    assert "Strict-Transport-Security" not in app_error.headers


def _expect_continue(server: Server, path: str = "/api/v1/auth/register") -> socket.socket:
    """A request whose body the app waits for: headers with ``Expect: 100-continue``,
    the server's "100 Continue" read, and no body (yet)."""
    sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
    return sock


def test_a_worker_timeout_answers_500_in_the_error_shape(serve):
    server = serve(workers=1, GUNICORN_TIMEOUT="2")
    sock = _expect_continue(server)  # the app now waits for a body that never comes
    started = time.monotonic()
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.body = response.read()  # type: ignore[attr-defined]
    assert_error(response, 500)
    assert response.getheader("X-Frame-Options") == "DENY"
    assert time.monotonic() - started < 10
    # The worker was replaced; the server answers again.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url("/health"), timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError(server.log()[-3000:])


class Trickler(threading.Thread):
    """A client sending ``head`` then one more ``drip`` every ``every`` seconds."""

    def __init__(self, server: Server, head: bytes, drip: bytes, every: float = 0.5):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
        self.head, self.drip, self.every = head, drip, every
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.sock.sendall(self.head)
            while not self.stop.wait(self.every):
                self.sock.sendall(self.drip)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.sock.close()


def test_slow_clients_do_not_stall_the_api(serve):
    server = serve(workers=2)
    slow = [
        Trickler(server, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n") for _ in range(8)
    ] + [
        Trickler(
            server,
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
            b" ",
        )
        for _ in range(4)
    ]
    for client in slow:
        client.start()
    try:
        time.sleep(1.0)
        worst = 0.0
        for _ in range(20):
            started = time.monotonic()
            assert requests.get(server.url("/health"), timeout=5).status_code == 200
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.1)
        assert worst < 1.0, f"a request took {worst:.2f} s behind 12 slow clients"
    finally:
        for client in slow:
            client.close()


def test_a_request_not_received_in_time_is_answered_408(serve):
    server = serve(workers=1)
    sock = socket.create_connection(
        ("127.0.0.1", port_of(server)), timeout=REQUEST_READ_TIMEOUT + 10
    )
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ...and never the rest
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.body = response.read()  # type: ignore[attr-defined]
    assert_error(response, 408)
    # Meanwhile, and after, the worker served others.
    assert requests.get(server.url("/health"), timeout=5).status_code == 200


def test_sigterm_answers_the_connections_queued_in_the_backlog(serve):
    server = serve(workers=1)
    busy = _expect_continue(server)  # the only worker is busy in the app, waiting
    queued: list[socket.socket] = []
    for _ in range(10):  # accepted by the kernel, waiting in the listen backlog
        sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        queued.append(sock)

    server.terminate()  # the deploy: SIGTERM to the master
    time.sleep(0.5)
    busy.sendall(b"{}")  # the busy request finishes (422: no fields)
    answers = []
    for sock in [busy, *queued]:
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        answers.append(response.status)
        sock.close()
    assert answers == [422] + [200] * 10, (answers, server.log()[-3000:])
    assert server.wait(timeout=30) == 0, server.log()[-3000:]


def test_kept_alive_connections_serve_several_requests_and_do_not_hold_up_a_deploy(serve):
    server = serve(workers=1)
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    conn.request("GET", "/health")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    for _ in range(3):
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Connection") == "keep-alive"
        response.read()
        assert conn.sock is sock, "the connection was not kept alive"
    # The deploy: the idle kept-alive connection does not make the worker wait for it
    # (the drain's 1 s of quiet, then gunicorn's master takes 1-2 s to notice and exit).
    started = time.monotonic()
    assert server.stop(timeout=30) == 0, server.log()[-3000:]
    assert time.monotonic() - started < 10
    conn.close()
