"""Proof over real HTTP: the server as the Procfile runs it (gunicorn.conf.py: gunicorn's
gthread worker) is not stalled by a few slow clients, keeps connections alive without
holding up a deploy, and what it answers by itself (a malformed request) stays its own.

No database is needed: the requests here never reach one (SQLite file, no tables).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.slow.support import Server, assert_http_error

pytestmark = pytest.mark.slow


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


BAD_REQUESTS = {
    414: b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    431: b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    400: b"NOT HTTP AT ALL\r\n\r\n",
}


def test_what_the_server_refuses_by_itself_keeps_its_status_and_the_app_stays_json(serve):
    """gunicorn answers a request it cannot parse before the app sees it, in its own
    words (README, "Serving"); every answer of the app is the JSON error shape."""
    server = serve()
    for status, data in BAD_REQUESTS.items():
        assert raw_request(server, data).status in (status, 400), status
    assert_http_error(requests.get(server.url("/api/v1/no-such-thing"), timeout=10), 404)
    assert server.process.poll() is None


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


def test_a_few_slow_clients_do_not_stall_the_api(serve):
    """Each costs a thread of one worker while it sends (8 threads per worker): six, even
    all on one worker, leave it threads for everyone else. One that sends nothing for a
    few seconds is handed back to the worker's poller."""
    server = serve(workers=2)
    slow = (
        [
            Trickler(server, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n")
            for _ in range(3)
        ]
        + [
            Trickler(server, b"", b"")
            for _ in range(2)  # connected, silent
        ]
        + [
            Trickler(
                server,
                b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
                b" ",
            )
            for _ in range(1)
        ]
    )
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
        assert worst < 1.0, f"a request took {worst:.2f} s behind {len(slow)} slow clients"
    finally:
        for client in slow:
            client.close()


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
    # (gunicorn keeps it at most 2 s more, then its master takes 1-2 s to exit).
    started = time.monotonic()
    assert server.stop(timeout=30) == 0, server.log()[-3000:]
    assert time.monotonic() - started < 10
    conn.close()
