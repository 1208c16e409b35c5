"""Fixtures: a fresh app and database per test, a client that checks every response
for leaked secrets, helpers to register and log in, and a SQL statement counter.

The suite runs on SQLite (in memory) by default and on PostgreSQL when
``TEST_DATABASE_URL`` is set: the schema is then built once by the migrations and every
table is emptied after each test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_smorest import abort
from sqlalchemy import event, text

from config import TestingConfig
from eleva import create_app
from eleva.core.errors import Conflict, NotFound
from eleva.data.db import db, is_begin
from eleva.data.fastread import STATEMENT_LISTENERS
from eleva.http.ratelimit import limiter

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith(("postgres", "postgresql"))
# pytest-xdist runs the suite in several processes (gw0, gw1 …): on PostgreSQL each works
# in a database of its own, TEST_DATABASE_URL's name with the worker's as a suffix.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if ON_POSTGRES and XDIST_WORKER:
    TEST_DATABASE_URL = f"{TEST_DATABASE_URL}_{XDIST_WORKER}"
PASSWORD = "correct horse battery staple"

requires_postgres = pytest.mark.skipif(
    not ON_POSTGRES, reason="needs TEST_DATABASE_URL (PostgreSQL)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "config(**overrides): app config overrides for this test")
    config.addinivalue_line(
        "markers", "own_app: an app of this test's own (it adds routes), never lent again"
    )


# A production environment that starts: what production refuses is tested by removing
# from it (tests/test_config.py).
PRODUCTION_ENV = {
    "ELEVA_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET_KEY": "j" * 40,
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/eleva",
    "STORAGE_BACKEND": "local",
    "CORS_ORIGINS": "https://app.example.com",
    "FRONTEND_URL": "https://app.example.com",
    "RATELIMIT_STORAGE_URI": "memory://",
}


def mark_migrated(app: Flask) -> None:
    """On SQLite, where the tests build the schema with ``create_all``, record it as at
    the migrations' heads (PostgreSQL's is built by the migrations themselves)."""
    from eleva.data import migrations

    heads, _ = migrations.history()
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        for head in heads:
            conn.execute(text("INSERT INTO alembic_version VALUES (:head)"), {"head": head})


def make_config(**env: str) -> TestingConfig:
    """A testing config from a clean environment (the developer's own is ignored)."""
    base = {"TEST_DATABASE_URL": TEST_DATABASE_URL} if TEST_DATABASE_URL else {}
    return TestingConfig({**base, **env})


# -- the client that checks for leaks ----------------------------------------------------


class CheckedClient(FlaskClient):
    """A test client asserting that no response contains a bcrypt hash or a password
    that a successful request of this test sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passwords: set[str] = set()

    def open(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        sent = _passwords_in(kwargs.get("json"))
        response = super().open(*args, **kwargs)
        body = response.get_data()
        assert b"$2b$" not in body and b"$2a$" not in body, "a bcrypt hash leaked"
        for password in self.passwords:
            assert password.encode() not in body, "a password leaked into a response"
        if 200 <= response.status_code < 300:
            self.passwords |= sent
        return response


def _passwords_in(payload: Any) -> set[str]:
    if not isinstance(payload, dict):
        return set()
    return {
        value
        for key, value in payload.items()
        if "password" in key and isinstance(value, str) and len(value) >= 8
    }


# -- app, database, client ---------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[None]:
    """On PostgreSQL: build the schema once, through the migrations."""
    if not ON_POSTGRES:
        yield
        return
    from flask_migrate import upgrade

    _create_database_if_missing(TEST_DATABASE_URL)
    app = create_app(make_config())
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()
    yield


def _create_database_if_missing(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


@dataclass
class SharedApp:
    """An app built once and lent to every test of the same configuration: building one
    (its OpenAPI spec above all) is most of a short test's time."""

    app: Flask
    config: dict[str, Any]
    extensions: dict[str, Any]
    media: Path


_SHARED: dict[str, SharedApp] = {}
# Flask-Limiter's one Limiter keeps the settings of the app it last initialised: an app
# lent again after another was built (a test's own, another configuration) is rebuilt.
_LIMITED: list[Flask | None] = [None]
_init_limiter = limiter.init_app


def _init_and_note(app: Flask, *args: Any, **kwargs: Any) -> None:
    _LIMITED[0] = app
    _init_limiter(app, *args, **kwargs)


limiter.init_app = _init_and_note  # type: ignore[method-assign]


def _shared_app(overrides: dict[str, Any], media_root: Path) -> SharedApp:
    key = repr(sorted(overrides.items()))
    shared = _SHARED.get(key)
    if shared is None or _LIMITED[0] is not shared.app:
        media = media_root / f"media-{len(_SHARED)}-{os.urandom(4).hex()}"
        settings = {k: v for k, v in overrides.items() if not k.startswith("_")}
        app = create_app(make_config(), {"LOCAL_STORAGE_PATH": str(media), **settings})
        app.test_client_class = CheckedClient
        shared = _SHARED[key] = SharedApp(app, dict(app.config), dict(app.extensions), media)
    return shared


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path_factory, postgres_schema) -> Iterator[Flask]:
    """The app of this test's configuration (``@pytest.mark.config``), on an empty
    database and storage; whatever the test changed in it is undone afterwards."""
    marker = request.node.get_closest_marker("config")
    overrides = dict(marker.kwargs) if marker else {}
    if request.node.get_closest_marker("own_app"):
        overrides["_own_app"] = request.node.nodeid  # a key no other test shares
    shared = _shared_app(overrides, tmp_path_factory.getbasetemp())
    app = shared.app
    with app.app_context():
        if not ON_POSTGRES:
            db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        if ON_POSTGRES:
            empty_tables()
        else:
            db.drop_all()
            # And what a test added beside the models (alembic_version): the in-memory
            # database lives as long as the app.
            with db.engine.begin() as conn:
                for (name,) in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).all():
                    conn.exec_driver_sql(f'DROP TABLE "{name}"')
        state = app.extensions.get("mailman")
        if state is not None and hasattr(state, "outbox"):
            state.outbox.clear()
    app.config.clear()
    app.config.update(shared.config)
    app.extensions.clear()
    app.extensions.update(shared.extensions)
    limited = shared.config["RATELIMIT_ENABLED"]  # a disabled app never binds the limiter
    if limited and shared.config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        # The counters a test left (in memory: this app's alone). An empty memory store
        # is falsy, which Limiter.storage asserts against: nothing to reset then.
        with contextlib.suppress(AssertionError):
            limiter.reset()
    shutil.rmtree(shared.media, ignore_errors=True)
    if "_own_app" in overrides:
        _SHARED.pop(repr(sorted(overrides.items())), None)


def empty_tables() -> None:
    """Delete every row, children first (the metadata's order: no list to keep)."""
    # DELETE, not TRUNCATE: on tables this small it is ~100× faster.
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def client(app: Flask) -> CheckedClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def failing_app():
    """An app with routes that fail in every way a real route can."""
    app = create_app(
        make_config(), {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )

    @app.get("/_test/abort/<int:code>")
    def aborting(code):
        abort(code)

    @app.get("/_test/crash")
    def crash():
        raise RuntimeError("secret internals: password=hunter2 at /srv/eleva")

    @app.get("/_test/domain")
    def domain():
        raise NotFound("No such thing.")

    @app.get("/_test/conflict")
    def conflict():
        raise Conflict.taken("email", "email address")

    return app


# -- auth helper -------------------------------------------------------------------------


class BearerTokens:
    """Headers for a token pair (``access_token``, ``refresh_token`` attributes)."""

    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def refresh_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.refresh_token}"}


@dataclass
class Account(BearerTokens):
    id: int
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    body: dict = field(default_factory=dict)


class AuthActions:
    def __init__(self, client: CheckedClient) -> None:
        self.client = client

    def register(
        self,
        username: str = "ada",
        email: str | None = None,
        password: str = PASSWORD,
        **extra: Any,
    ):
        body = {
            "username": username,
            "email": email or f"{username}@example.com",
            "password": password,
            **extra,
        }
        return self.client.post("/api/v1/auth/register", json=body)

    def login(self, login: str, password: str = PASSWORD):
        return self.client.post("/api/v1/auth/login", json={"login": login, "password": password})

    def account(self, username: str = "ada", password: str = PASSWORD, **extra: Any) -> Account:
        """Register (once) and log in: a user with a fresh token pair."""
        registered = self.register(username, password=password, **extra)
        assert registered.status_code in (201, 409), registered.json
        email = extra.get("email") or f"{username}@example.com"
        response = self.login(username, password)
        assert response.status_code == 200, response.json
        me = self.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {response.json['access_token']}"}
        ).json
        return Account(
            id=me["id"],
            username=username,
            email=email,
            password=password,
            access_token=response.json["access_token"],
            refresh_token=response.json["refresh_token"],
            body=me,
        )


@pytest.fixture
def auth(client: CheckedClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def user(auth: AuthActions) -> Account:
    return auth.account("ada")


@pytest.fixture
def other(auth: AuthActions) -> Account:
    return auth.account("grace")


# -- SQL statement counter ---------------------------------------------------------------


@contextmanager
def watch_statements(app: Flask, on_statement: Callable[[Any, str], None]) -> Iterator[None]:
    """Call ``on_statement(driver_connection, sql)`` for every statement the app sends,
    through SQLAlchemy or straight to the driver (eleva.data.fastread), but the
    start of each transaction (BEGIN and its settings, eleva.data.db.is_begin)."""

    def through_sqlalchemy(conn, _cursor, statement, _params, _context, _many) -> None:
        if not is_begin(statement):
            on_statement(conn.connection.driver_connection, statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", through_sqlalchemy)
    STATEMENT_LISTENERS.append(on_statement)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", through_sqlalchemy)
        STATEMENT_LISTENERS.remove(on_statement)


@pytest.fixture
def count_queries(app: Flask):
    """``with count_queries() as statements: ...`` collects the SQL the app runs."""

    @contextmanager
    def counter() -> Iterator[list[str]]:
        statements: list[str] = []
        with watch_statements(app, lambda _connection, sql: statements.append(sql)):
            yield statements

    return counter


def assert_error_shape(response, status: int) -> dict:
    """The contract's error body: {code, status, message, errors?} as JSON."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) <= {"code", "status", "message", "errors"}
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    return body


# -- a real SMTP server, and the job queue's Redis ---------------------------------------


class SmtpInbox:
    """What an aiosmtpd server received: one ``email.message.Message`` per delivery."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, _server, _session, envelope) -> str:
        from email import message_from_bytes
        from email.policy import default

        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content, policy=default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, int, SmtpInbox]]:
    """A real SMTP server on a free loopback port: (host, port, inbox)."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, inbox
    finally:
        controller.stop()


# The tests' Redis database (the job queue's tests empty it): db 9 by default, one more
# per xdist worker. It must hold nothing but the tests' own keys: a database with other
# keys in it is refused, never emptied (TEST_REDIS_URL names another).
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
TESTS_MARKER = "eleva:tests:owned"


def _worker_redis_url(url: str) -> str:
    if not XDIST_WORKER:
        return url
    base, _, number = url.rpartition("/")
    offset = int(XDIST_WORKER.removeprefix("gw") or 0)
    return f"{base}/{int(number or 0) + offset}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The job queue's Redis (TEST_REDIS_URL, db 9 by default), emptied before and after.

    Skipped when Redis does not answer, except under CI (CI=true), where .ci/run has
    started it: there a missing Redis is a failure, never a silent skip."""
    import redis

    url = _worker_redis_url(TEST_REDIS_URL)
    conn = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        conn.ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {url}")
    if conn.dbsize() and not conn.exists(TESTS_MARKER):
        pytest.fail(
            f"{url} holds keys the tests did not write: it is not emptied. "
            "Point TEST_REDIS_URL at an empty Redis database."
        )
    conn.flushdb()
    conn.set(TESTS_MARKER, "1")
    yield url
    conn.flushdb()
    conn.set(TESTS_MARKER, "1")
    conn.close()
