"""Helpers for the slow proof runs: private PostgreSQL databases, a gunicorn subprocess,
an HTTP client for it, a TCP proxy that can play "the database went away", and a way to
fire requests at the same instant from many threads.

Imported by ``tests/slow/conftest.py`` (fixtures) and by the test modules (helpers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import requests
from sqlalchemy.engine import URL, make_url

from tests.conftest import ON_POSTGRES, PASSWORD, TEST_DATABASE_URL, BearerTokens

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Every variable config.py or gunicorn.conf.py reads: the developer's own values must
# not leak into a server the tests start.
_CONFIG_PREFIXES = (
    "ELEVA_",
    "SECRET_KEY",
    "JWT_",
    "DATABASE_",
    "TEST_DATABASE_URL",
    "CORS_",
    "STORAGE_",
    "LOCAL_STORAGE",
    "S3_",
    "MAX_",
    "BCRYPT_",
    "RATELIMIT_",
    "REDIS_URL",
    "PUBLIC_BASE_URL",
    "TRUSTED_PROXY",
    "API_DOCS",
    "LOG_LEVEL",
    "PORT",
    "WEB_CONCURRENCY",
    "GUNICORN_",
    "FLASK_",
    "REDIS_URL",
    "MAIL_",
    "FRONTEND_URL",
    "PASSWORD_RESET_",
    "EMAIL_VERIFY_",
    "EMAIL_REVERT_",
    "TEXT_EXTRACTION_",
    "REFRESH_",
    "JOB_",
    "LOG_FORMAT",
    "METRICS_TOKEN",
    "SENTRY_",
    "PROMETHEUS_",
)


def clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_PREFIXES)}
    env.update(extra)
    return env


# -- PostgreSQL --------------------------------------------------------------------------


def _server_url() -> URL:
    if not ON_POSTGRES:
        raise RuntimeError("needs TEST_DATABASE_URL (PostgreSQL)")
    return make_url(TEST_DATABASE_URL)


def libpq_dsn(database: str, *, port: int | None = None) -> str:
    """``postgresql://…/database`` on the server TEST_DATABASE_URL names (or via ``port``)."""
    url = _server_url().set(drivername="postgresql", database=database)
    if port is not None:
        url = url.set(host="127.0.0.1", port=port)
    return url.render_as_string(hide_password=False)


def upstream_address() -> tuple[str, int]:
    url = _server_url()
    return url.host or "127.0.0.1", url.port or 5432


def admin_execute(sql: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on the server's ``postgres`` database (autocommit)."""
    with psycopg.connect(libpq_dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []


def create_database(prefix: str = "eleva_slow") -> str:
    """A new, empty database with the schema built by ``flask db upgrade``."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin_execute(f'CREATE DATABASE "{name}"')
    result = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=clean_environ(FLASK_APP="wsgi", ELEVA_ENV="development", DATABASE_URL=libpq_dsn(name)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        drop_database(name)
        raise RuntimeError(f"flask db upgrade failed:\n{result.stdout}\n{result.stderr}")
    return name


def drop_database(name: str) -> None:
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate_connections(database: str) -> int:
    """Kill every connection to ``database`` (the app's pool included); return how many.

    Each kill is waited for (up to 5 s): the server's goodbye is then on the app's
    socket, and the next request comes *after* it. Without the wait, a request may race
    the kill and meet a connection dying under its statement: a 503, which is right,
    but not what the tests built on this one prove.
    """
    rows = admin_execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    )
    assert all(terminated for (terminated,) in rows), "a connection outlived its kill"
    return len(rows)


# -- PgBouncer ---------------------------------------------------------------------------

PGBOUNCER = "/usr/sbin/pgbouncer"  # Debian's package (.ci/run installs it)


@dataclass
class PgBouncer:
    process: subprocess.Popen
    port: int
    log_path: Path

    def dsn(self, database: str) -> str:
        return libpq_dsn(database, port=self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_pgbouncer(database: str, directory: Path, *, pool_size: int = 2) -> PgBouncer:
    """Debian's pgbouncer in front of ``database``, in transaction pooling (the default of
    several PaaS poolers), with few server connections: each is shared by many clients,
    so a setting or a prepared statement left on one would meet another client's work."""
    host, upstream_port = upstream_address()
    port = free_port()
    user = _server_url().username or "postgres"
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        f"[databases]\n{database} = host={host} port={upstream_port} dbname={database}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {directory / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
        # It refuses to run as root: as root (CI), it drops to the database's user.
        + ("user = postgres\n" if os.geteuid() == 0 else "")
    )
    log_path = directory / "pgbouncer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [PGBOUNCER, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=directory
        )
    bouncer = PgBouncer(process, port, log_path)
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(bouncer.dsn(database), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return bouncer
        except psycopg.Error:
            if process.poll() is not None or time.monotonic() > deadline:
                bouncer.stop()
                raise RuntimeError("pgbouncer did not start:\n" + log_path.read_text()) from None
            time.sleep(0.1)


# -- gunicorn ----------------------------------------------------------------------------


def lock_waiters(database: str) -> int:
    """How many sessions of ``database`` are waiting on a lock right now."""
    rows = admin_execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        (database,),
    )
    return rows[0][0]


def wait_for_lock_waiters(database: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while lock_waiters(database) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} request(s) ever waited on the lock")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The access log line names the worker (pid) and the request id, so a test can tell which
# worker answered which request.
ACCESS_LOG_FORMAT = 'pid=%(p)s rid=%({x-request-id}o)s "%(r)s" %(s)s'


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    log_path: Path
    media: Path | None = None  # LOCAL_STORAGE_PATH
    database: str | None = None  # set by the fixture that made the database
    exit_code: int | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def _lines_since(self, offset: int) -> list[str]:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace").splitlines()

    def statuses_since(self, offset: int) -> list[int]:
        """The status of every request answered (gunicorn's access log) after ``offset``."""
        return [
            int(line.split()[-1]) for line in self._lines_since(offset) if line.startswith("pid=")
        ]

    def failures_since(self, offset: int) -> list[str]:
        """Access-log lines with a 5xx status, and tracebacks, logged after ``offset``."""
        return [
            line
            for line in self._lines_since(offset)
            if "Traceback" in line or (line.startswith("pid=") and line.split()[-1][:1] == "5")
        ]

    def workers_for(self, request_ids: list[str], timeout: float = 5) -> dict[str, str]:
        """Which worker (pid, from the access log) answered each request id."""
        deadline = time.monotonic() + timeout
        while True:
            found = {}
            for line in self.log().splitlines():
                if line.startswith("pid=") and " rid=" in line:
                    pid, rid = line.split()[:2]
                    found[rid.removeprefix("rid=")] = pid
            answer = {rid: found[rid] for rid in request_ids if rid in found}
            if len(answer) == len(request_ids) or time.monotonic() > deadline:
                return answer
            time.sleep(0.1)

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url("/health"), timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /health within {timeout} s:\n{self.log()}")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 40) -> int:
        try:
            self.exit_code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_code = self.process.wait()
            raise
        return self.exit_code

    def stop(self, timeout: float = 40) -> int:
        self.terminate()
        return self.wait(timeout)


def start_gunicorn(
    *,
    database_url: str,
    log_dir: Path,
    environment: str = "testing",
    workers: int = 2,
    **extra_env: str,
) -> Server:
    """gunicorn as the Procfile runs it (gunicorn.conf.py), on a free loopback port."""
    port = free_port()
    media = log_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    env = clean_environ(
        ELEVA_ENV=environment,
        LOCAL_STORAGE_PATH=str(media),
        BCRYPT_ROUNDS="4",
        RATELIMIT_ENABLED="false",
        LOG_LEVEL="INFO",
        # Text lines, whatever the environment: the helpers below read the access log's
        # ACCESS_LOG_FORMAT (tests/slow/test_operations.py reads the JSON ones).
        LOG_FORMAT="text",
    )
    if environment == "testing":
        env["TEST_DATABASE_URL"] = database_url
    else:
        env["DATABASE_URL"] = database_url
    if environment == "production":
        env["MAIL_BACKEND"] = "dummy"  # no SMTP server here: emails dropped
        env["SECRET_KEY"] = "slow-tests-" + secrets.token_hex(32)
        env["JWT_SECRET_KEY"] = "slow-tests-jwt-" + secrets.token_hex(32)
        # What production insists on being told (config.ProductionConfig.unsafe).
        env["STORAGE_BACKEND"] = "local"
        env["CORS_ORIGINS"] = "https://app.example.com"
        env["FRONTEND_URL"] = "https://app.example.com"
    env.update(extra_env)
    log_path = log_dir / f"gunicorn-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "wsgi:app",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(workers),
                "--access-logformat",
                ACCESS_LOG_FORMAT,
                # Not the shared default path (~/.gunicorn/gunicorn.ctl): other servers
                # may be running on this machine.
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, media)
    try:
        server.wait_healthy()
    except Exception:
        with contextlib.suppress(Exception):
            server.process.kill()
            server.process.wait(5)
        raise
    return server


# -- HTTP --------------------------------------------------------------------------------


@dataclass
class Account(BearerTokens):
    username: str
    email: str
    access_token: str
    refresh_token: str


@dataclass
class Api:
    """A tiny client for a running server: one new connection per request, so that
    requests spread over the workers."""

    base_url: str
    timeout: float = 30
    _names: set[str] = field(default_factory=set)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        timeout = kwargs.pop("timeout", self.timeout)
        return requests.request(method, self.base_url + path, timeout=timeout, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def register(self, username: str, email: str | None = None) -> requests.Response:
        body = {"username": username, "email": email or f"{username}@example.com"}
        return self.post("/api/v1/auth/register", json={**body, "password": PASSWORD})

    def login(self, login: str, password: str = PASSWORD) -> requests.Response:
        return self.post("/api/v1/auth/login", json={"login": login, "password": password})

    def account(self, prefix: str = "user") -> Account:
        """A new user (unique name) with a fresh token pair."""
        username = f"{prefix}_{secrets.token_hex(4)}"
        registered = self.register(username)
        assert registered.status_code == 201, registered.text
        tokens = self.login(username)
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        return Account(
            username, f"{username}@example.com", body["access_token"], body["refresh_token"]
        )


def assert_http_error(response: requests.Response, status: int) -> dict:
    """The contract's error body, over real HTTP: {code, status, message, errors?}."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.headers.get("Content-Type"),
        response.text[:500],
    )
    body = response.json()
    assert set(body) <= {"code", "status", "message", "errors"}, body
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def simultaneously(count: int, action: Callable[[int], T], timeout: float = 60) -> list[T]:
    """Run ``action(0..count-1)`` on ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait(timeout=timeout)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count), timeout=timeout))


def answered_by_every_worker(
    server: Server, api: Api, headers: dict[str, str], status: int, *, workers: int = 2
) -> None:
    """GET /users/me in bursts of simultaneous new connections until every worker has
    answered (which one accepts a connection is the kernel's choice: even a burst may all
    land on one); every answer is ``status``."""
    ids: list[str] = []
    for _ in range(5):
        responses = simultaneously(16, lambda _i: api.get("/api/v1/users/me", headers=headers))
        for response in responses:
            if status == 200:
                assert response.status_code == 200, response.text
            else:
                assert_http_error(response, status)
        ids += [r.headers["X-Request-ID"] for r in responses]
        if len(set(server.workers_for(ids).values())) == workers:
            return
    raise AssertionError(f"fewer than {workers} workers answered {len(ids)} requests")


def statuses(responses: list[requests.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


# -- a TCP proxy in front of PostgreSQL ---------------------------------------------------


class TcpProxy:
    """Forward 127.0.0.1:<port> ↔ PostgreSQL, and play "the database went away".

    ``stop()`` closes the listener and every forwarded connection (as a crashed or
    stopped server would: connections reset, new ones refused); ``start()`` listens again
    on the same port.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.accepted = 0

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.05)  # the accept loop notices stop() quickly
        self._stopped = threading.Event()
        self._listener = listener
        threading.Thread(
            target=self._accept_loop, args=(listener, self._stopped), daemon=True
        ).start()

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._sockets) // 2

    def _accept_loop(self, listener: socket.socket, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if stopped.is_set():
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
                self.accepted += 1
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for sock in (src, dst):
                    if sock in self._sockets:
                        self._sockets.discard(sock)
                        sock.close()
