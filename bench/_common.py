"""What the benchmarks share: scratch PostgreSQL databases, the app in production
configuration, a SQL statement counter, percentiles and a description of the machine.

Nothing here is imported by the app; every helper cleans up after itself.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The server every benchmark talks to (trust authentication). Never the `test` database:
# the test suite uses it concurrently. Every database a benchmark makes is eleva_bench_*.
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_DB_NAME_RE = re.compile(r"^eleva_bench_[a-z0-9_]+$")


def pg_url(name: str, admin_url: str = PG_ADMIN_URL) -> str:
    """The URL of database ``name`` on the admin URL's server (psycopg 3 driver)."""
    base = admin_url.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


def _admin(sql: str, admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def scratch_database(name: str, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """Create database ``name`` (eleva_bench_*), migrate it, yield its URL, drop it.

    ``BENCH_DATABASE=<name>`` in the environment puts it under that name instead (on a
    machine shared with other people's benchmarks, a database that is yours alone); it
    is dropped and created anew all the same, and left there, empty, at the end.
    """
    name = os.environ.get("BENCH_DATABASE") or name
    if not _DB_NAME_RE.match(name) and name != os.environ.get("BENCH_DATABASE"):
        raise ValueError(f"benchmark databases are named eleva_bench_*, not {name!r}")
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", admin_url)
    _admin(f"CREATE DATABASE {name}", admin_url)
    try:
        url = pg_url(name, admin_url)
        upgrade(url)
        yield url
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", admin_url)
        if name == os.environ.get("BENCH_DATABASE"):
            _admin(f"CREATE DATABASE {name}", admin_url)  # as it was given: there


def upgrade(database_url: str) -> None:
    """`flask db upgrade` on ``database_url``, as the release phase runs it."""
    env = {**os.environ, "DATABASE_URL": database_url, "ELEVA_ENV": "development"}
    subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def production_env(database_url: str, media_path: str, **extra: str) -> dict[str, str]:
    """The environment of a production deploy, minus rate limits (they would throttle
    the load), with random secrets, and emails dropped (no SMTP server here)."""
    return {
        "ELEVA_ENV": "production",
        "MAIL_BACKEND": "dummy",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "LOCAL_STORAGE_PATH": media_path,
        # What production insists on being told (older checkouts ignore them).
        "STORAGE_BACKEND": "local",
        "CORS_ORIGINS": "https://app.example.com",
        "FRONTEND_URL": "https://app.example.com",
        "RATELIMIT_ENABLED": "false",
        **extra,
    }


def make_app(env: Mapping[str, str]) -> Any:
    """The Flask app, in process, from ``env`` alone (the caller's environment is ignored)."""
    from config import load_config
    from eleva import create_app

    return create_app(load_config(env))


# -- SQL statement counter ---------------------------------------------------------------


@dataclass
class StatementCounter:
    """Counts what an app sends: statements (``before_cursor_execute``, and the hot reads'
    ``DIRECT_STATEMENT_LISTENERS``), connection checkouts from the pool, commits and
    rollbacks."""

    engine: Any
    statements: list[tuple[str, Any]] = field(default_factory=list)
    checkouts: int = 0
    commits: int = 0
    rollbacks: int = 0

    def __post_init__(self) -> None:
        from sqlalchemy import event

        from eleva.data.fastread import DIRECT_STATEMENT_LISTENERS

        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        event.listen(self.engine.pool, "checkout", self._checkout)
        DIRECT_STATEMENT_LISTENERS.append(self._direct)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)
        event.remove(self.engine.pool, "checkout", self._checkout)
        from eleva.data.fastread import DIRECT_STATEMENT_LISTENERS

        DIRECT_STATEMENT_LISTENERS.remove(self._direct)

    def reset(self) -> None:
        self.statements.clear()
        self.checkouts = self.commits = self.rollbacks = 0

    def _statement(self, _conn, _cursor, statement, parameters, _context, _many) -> None:
        self.statements.append((statement, parameters))

    def _direct(self, _connection, statement, parameters) -> None:
        self.statements.append((statement, parameters))

    def _commit(self, _conn) -> None:
        self.commits += 1

    def _rollback(self, _conn) -> None:
        self.rollbacks += 1

    def _checkout(self, _dbapi_conn, _record, _proxy) -> None:
        self.checkouts += 1


def seed_user_with_subjects(app: Any, n_subjects: int) -> dict[str, str]:
    """In process: register and log in a user, give them ``n_subjects`` subjects (one
    ``INSERT … SELECT generate_series``, then ANALYZE); their Authorization header."""
    password = secrets.token_urlsafe(16)
    client = app.test_client()
    body = {"email": "bench@example.com", "username": "bench", "password": password}
    user = client.post("/api/v1/auth/register", json=body).json
    tokens = client.post("/api/v1/auth/login", json={"login": "bench", "password": password}).json
    with app_engine(app).raw_connection() as raw:
        with raw.cursor() as cursor:
            cursor.execute(
                "INSERT INTO subjects (owner_id, name, description, color, is_archived,"
                " created_at, updated_at) SELECT %(owner)s, 'Subject ' || g,"
                " 'Notes ' || g, '#3A7BD5', false, now() - g * interval '1 minute',"
                " now() - g * interval '1 minute' FROM generate_series(1, %(n)s) g",
                {"owner": user["id"], "n": n_subjects},
            )
            cursor.execute("ANALYZE subjects")
        raw.commit()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def app_engine(app: Any) -> Any:
    from eleva.data.db import db

    with app.app_context():
        return db.engine


# -- figures -----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0–100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    """One paragraph on where the figures come from."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    pg = postgres_version()
    return (
        f"{cpu}, {os.cpu_count()} cores{ram}; Linux {platform.release()}; "
        f"Python {platform.python_version()}; {pg}"
    )


def postgres_version(admin_url: str = PG_ADMIN_URL) -> str:
    try:
        import psycopg

        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}"
    except Exception:  # only decorates the report
        return "PostgreSQL (not reachable)"


def rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)))


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
