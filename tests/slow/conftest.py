"""Fixtures for the slow proof runs (``pytest -m slow``).

Servers run against private databases (``eleva_slow_<random>``), never the everyday
suite's ``test`` database, which that suite truncates per test and may be using at the
same time. Every database made here is dropped at the end of the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from eleva import create_app
from eleva.data.db import db
from tests.conftest import ON_POSTGRES, CheckedClient, empty_tables, make_config
from tests.slow.support import (
    Server,
    TcpProxy,
    create_database,
    drop_database,
    libpq_dsn,
    start_gunicorn,
    upstream_address,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the test item (``item.rep_call``) for fixtures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def new_database() -> Iterator[Callable[[], str]]:
    """``new_database()`` → the name of a fresh, migrated PostgreSQL database."""
    if not ON_POSTGRES:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    made: list[str] = []

    def make() -> str:
        name = create_database()
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(Exception):
            drop_database(name)


@pytest.fixture(scope="session")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """``gunicorn(database_url=…, environment="testing", workers=2, **env)`` → a running
    server (healthy); any still running at the end of the session is stopped."""
    started: list[Server] = []

    def start(**kwargs) -> Server:
        server = start_gunicorn(log_dir=tmp_path_factory.mktemp("gunicorn"), **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            with contextlib.suppress(Exception):
                server.stop(timeout=40)


@pytest.fixture
def db_proxy() -> Iterator[TcpProxy]:
    """A TCP proxy in front of PostgreSQL, listening."""
    proxy = TcpProxy(upstream_address())
    proxy.start()
    yield proxy
    proxy.stop()


# -- in-process apps on a private database -------------------------------------------------


@pytest.fixture(scope="session")
def private_database_url() -> Iterator[str | None]:
    """On PostgreSQL: one private, migrated database for the in-process tests here."""
    if not ON_POSTGRES:
        yield None
        return
    name = create_database()
    yield libpq_dsn(name)
    with contextlib.suppress(Exception):
        drop_database(name)


@pytest.fixture
def make_app(tmp_path: Path, private_database_url: str | None) -> Iterator[Callable[..., Flask]]:
    """``make_app(env={...}, **overrides)`` → a testing app on a private database
    (PostgreSQL) or in memory (SQLite); its tables are emptied after the test."""
    apps: list[Flask] = []

    def make(env: dict[str, str] | None = None, **overrides) -> Flask:
        env = dict(env or {})
        env["TEST_DATABASE_URL"] = private_database_url or "sqlite://"
        app = create_app(
            make_config(**env), {"LOCAL_STORAGE_PATH": str(tmp_path / "media"), **overrides}
        )
        app.test_client_class = CheckedClient
        if private_database_url is None:
            with app.app_context():
                db.create_all()
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            if private_database_url is not None:
                empty_tables()
            db.engine.dispose()
