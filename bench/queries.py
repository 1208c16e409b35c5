"""SQL statements per request, for every endpoint of the API.

    python -m bench.queries [--sqlite] [--sql]

In process, with the Flask test client, against a fresh PostgreSQL database (default,
eleva_bench_queries, dropped at the end) or an in-memory SQLite one (``--sqlite``). A
``before_cursor_execute`` listener on the app's engine counts the statements each request
sends through SQLAlchemy, and ``DIRECT_STATEMENT_LISTENERS`` those the hot reads send
straight to psycopg (eleva.data.fastread.FastRead). Also counted: connection checkouts from
the pool (the hot reads use the worker's own connection instead) and commits. ``--sql``
prints every statement.
"""

# The path is fixed before the imports that follow it.
# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# `python bench/x.py` puts bench/ first on sys.path, where bench/http.py would shadow the
# standard library's `http`. Take bench/ off the path and put the project on it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import io
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench._common import (
    StatementCounter,
    app_engine,
    make_app,
    production_env,
    rule,
    scratch_database,
)

PASSWORD = "a long bench passphrase"
NEW_PASSWORD = "another long bench passphrase"
# Cheap hashes (statements do not depend on the cost), the docs routes on, and no
# per-request log line (the refresh-reuse warning is expected).
QUIET = {"BCRYPT_ROUNDS": "4", "API_DOCS_ENABLED": "true", "LOG_LEVEL": "ERROR"}


@dataclass
class Row:
    method: str
    path: str
    case: str
    status: int
    statements: int
    checkouts: int
    commits: int
    sql: list[str]


class Recorder:
    """Sends requests through the test client and records what each one cost in SQL."""

    def __init__(self, app: Any, counter: StatementCounter) -> None:
        self.client = app.test_client()
        self.counter = counter
        self.rows: list[Row] = []

    def __call__(
        self,
        method: str,
        path: str,
        case: str = "",
        *,
        token: str | None = None,
        expect: int | None = None,
        **kwargs: Any,
    ):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.counter.reset()
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        self.rows.append(
            Row(
                method,
                path.split("?")[0] if not case else path,
                case,
                response.status_code,
                len(self.counter.statements),
                self.counter.checkouts,
                self.counter.commits,
                [" ".join(statement.split()) for statement, _ in self.counter.statements],
            )
        )
        if expect is not None and response.status_code != expect:
            raise SystemExit(
                f"{method} {path}: expected {expect}, got {response.status_code}: "
                f"{response.get_data(as_text=True)[:300]}"
            )
        return response


def jpeg(width: int = 800, height: int = 600) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG")
    return out.getvalue()


def scenario(r: Recorder) -> None:
    """Every route of the API, in the order a client would meet them."""
    r("GET", "/health", expect=200)
    r("GET", "/health/ready", expect=200)
    r("GET", "/openapi.json", expect=200)

    ada = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
    r("POST", "/api/v1/auth/register", "new account", json=ada, expect=201)
    r("POST", "/api/v1/auth/register", "email taken", json=ada, expect=409)
    r(
        "POST",
        "/api/v1/auth/register",
        "common password",
        json={**ada, "username": "ada2", "email": "a2@example.com", "password": "password1"},
        expect=422,
    )
    for name, visibility in (("grace", "public"), ("hidden", "private")):
        body = {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
        r.client.post("/api/v1/auth/register", json=body)
        token = r.client.post(
            "/api/v1/auth/login", json={"login": name, "password": PASSWORD}
        ).json["access_token"]
        r.client.patch(
            "/api/v1/users/me",
            json={"privacy": {"profile_visibility": visibility}},
            headers={"Authorization": f"Bearer {token}"},
        )
        if name == "grace":
            grace_token = token

    login = r(
        "POST", "/api/v1/auth/login", "by username",
        json={"login": "ada", "password": PASSWORD}, expect=200,
    )  # fmt: skip
    r(
        "POST", "/api/v1/auth/login", "by email",
        json={"login": "ADA@example.com", "password": PASSWORD}, expect=200,
    )  # fmt: skip
    r(
        "POST", "/api/v1/auth/login", "wrong password",
        json={"login": "ada", "password": "not the password"}, expect=401,
    )  # fmt: skip
    r(
        "POST", "/api/v1/auth/login", "unknown login",
        json={"login": "nobody", "password": PASSWORD}, expect=401,
    )  # fmt: skip
    access, refresh = login.json["access_token"], login.json["refresh_token"]

    r("GET", "/api/v1/users/me", token=access, expect=200)
    r("GET", "/api/v1/users/me", "no token", expect=401)
    r("GET", "/api/v1/users/me", "malformed token", token="not-a-jwt", expect=401)
    r("PATCH", "/api/v1/users/me", token=access, json={"bio": "Maths"}, expect=200)
    r("PATCH", "/api/v1/users/me", "username taken", token=access,
      json={"username": "GRACE"}, expect=409)  # fmt: skip
    r("GET", "/api/v1/users/grace", "public profile", token=access, expect=200)
    r("GET", "/api/v1/users/ada", "own profile", token=access, expect=200)
    r("GET", "/api/v1/users/hidden", "private profile", token=access, expect=404)
    r("GET", "/api/v1/users/nobody", "unknown", token=access, expect=404)

    picture = r(
        "PUT", "/api/v1/users/me/picture", "first picture", token=access,
        data={"file": (io.BytesIO(jpeg()), "me.jpg")}, content_type="multipart/form-data",
        expect=200,
    )  # fmt: skip
    media_path = urlsplit(picture.json["profile_picture_url"]).path
    r("GET", media_path, "stored picture", expect=200)
    r.rows[-1].path = media_path.rsplit("/", 1)[0] + "/<uuid>.jpg"
    r(
        "PUT", "/api/v1/users/me/picture", "replace picture", token=access,
        data={"file": (io.BytesIO(jpeg(640, 480)), "me.jpg")},
        content_type="multipart/form-data", expect=200,
    )  # fmt: skip
    r("DELETE", "/api/v1/users/me/picture", token=access, expect=204)

    first = r("POST", "/api/v1/subjects/", token=access, json={"name": "Algebra"}, expect=201)
    for i in range(24):
        r.client.post(
            "/api/v1/subjects/",
            json={"name": f"Subject {i}", "description": f"notes {i}"},
            headers={"Authorization": f"Bearer {access}"},
        )
    r("POST", "/api/v1/subjects/", "name taken", token=access,
      json={"name": "ALGEBRA"}, expect=409)  # fmt: skip
    r("GET", "/api/v1/subjects/", "page 1 of 25", token=access, expect=200)
    r("GET", "/api/v1/subjects/?page=2", "page 2 of 25", token=access, expect=200)
    r("GET", "/api/v1/subjects/?q=subject&sort=name&archived=all&page_size=100",
      "search + sort", token=access, expect=200)  # fmt: skip
    r("GET", "/api/v1/subjects/?page=999", "past the end", token=access, expect=200)
    sid = first.json["id"]
    got = r("GET", f"/api/v1/subjects/{sid}", token=access, expect=200)
    etag = got.headers["ETag"]
    r("GET", f"/api/v1/subjects/{sid}", "If-None-Match", token=access,
      headers={"If-None-Match": etag}, expect=304)  # fmt: skip
    r("GET", f"/api/v1/subjects/{sid}", "another user's", token=grace_token, expect=404)
    r("PATCH", f"/api/v1/subjects/{sid}", "If-Match", token=access,
      headers={"If-Match": etag}, json={"color": "#3a7bd5"}, expect=200)  # fmt: skip
    r("PATCH", f"/api/v1/subjects/{sid}", "stale If-Match", token=access,
      headers={"If-Match": etag}, json={"color": "#000000"}, expect=412)  # fmt: skip
    r("PATCH", f"/api/v1/subjects/{sid}", "no If-Match", token=access,
      json={"is_archived": True}, expect=200)  # fmt: skip
    r("DELETE", f"/api/v1/subjects/{sid}", token=access, expect=204)

    r("POST", "/api/v1/auth/refresh", token=refresh, expect=200)
    # A second tab's refresh with the token just swapped gets a pair (the grace)...
    r("POST", "/api/v1/auth/refresh", "reused in grace", token=refresh, expect=200)
    # ...past it, the reuse is taken for theft: 401, and the session ends.
    r.client.application.config["REFRESH_REUSE_GRACE_SECONDS"] = 0
    r("POST", "/api/v1/auth/refresh", "reused past grace", token=refresh, expect=401)
    login = r.client.post("/api/v1/auth/login", json={"login": "ada", "password": PASSWORD})
    access = login.json["access_token"]
    r(
        "PUT", "/api/v1/users/me/password", token=access,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, expect=None,
    )  # fmt: skip
    r("POST", "/api/v1/auth/logout", token=access, expect=204)
    login = r.client.post("/api/v1/auth/login", json={"login": "ada", "password": NEW_PASSWORD})
    r("DELETE", "/api/v1/users/me", token=login.json["access_token"],
      json={"password": NEW_PASSWORD}, expect=204)  # fmt: skip


def report(rows: list[Row], backend: str, show_sql: bool) -> None:
    rule(f"bench.queries — SQL per request ({backend})")
    width = max(len(row.path) for row in rows) + 2
    print(
        f"{'method':<7}{'path':<{width}}{'case':<18}{'status':>6}"
        f"{'stmts':>7}{'chk':>5}{'commit':>8}"
    )
    for row in rows:
        print(
            f"{row.method:<7}{row.path:<{width}}{row.case:<18}{row.status:>6}"
            f"{row.statements:>7}{row.checkouts:>5}{row.commits:>8}"
        )
        if show_sql:
            for statement in row.sql:
                print(f"         {statement}")
    print(
        "\nstmts: statements sent (through SQLAlchemy or, for hot reads, psycopg); chk: "
        "connections checked out\nof the pool (the first hot read of a worker opens its own); "
        "commit: COMMITs sent."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="in-memory SQLite, not PostgreSQL")
    parser.add_argument("--sql", action="store_true", help="print every statement")
    args = parser.parse_args()

    media = tempfile.TemporaryDirectory(prefix="eleva-bench-queries-")
    with media:
        if args.sqlite:
            env = production_env("sqlite://", media.name, **QUIET)
            app = make_app(env)
            from eleva.data.db import db

            with app.app_context():
                db.create_all()
            run(app, "SQLite, in memory", args.sql)
        else:
            with scratch_database("eleva_bench_queries") as url:
                env = production_env(url, media.name, **QUIET)
                app = make_app(env)
                try:
                    run(app, "PostgreSQL", args.sql)
                finally:
                    app_engine(app).dispose()
    return 0


def run(app: Any, backend: str, show_sql: bool) -> None:
    counter = StatementCounter(app_engine(app))
    try:
        recorder = Recorder(app, counter)
        scenario(recorder)
    finally:
        counter.close()
    report(recorder.rows, backend, show_sql)


if __name__ == "__main__":
    raise SystemExit(main())
