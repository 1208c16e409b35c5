"""How soon every worker refuses an ended session, now that each keeps its session checks.

    python -m bench.revocation [--trials 100] [--after 10] [--load]

Eléva (production configuration, PostgreSQL) served as the Procfile runs it. Each trial
logs a user in, sends 30 requests with the access token from 16 threads (every worker
keeps the check), logs out, and as soon as the 204 is in sends ``--after`` requests with
the same token at once, each on a new connection. It prints how many of those were
still answered 200 — the figure the contract wants at 0 ("that access token … stop[s]
working") — and how long a worker takes to hear of a change: the time from a commit
elsewhere to the notification on a listening connection (``LISTEN user_changes``).
``--load`` keeps the server busy meanwhile (wrk, 16 connections on the subject list of
another user), as a scheduler delay is what could make a notification late.
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
import secrets
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from bench._common import machine, median, percentile, production_env, rule, scratch_database
from bench.http import Server, call, seed

DB_NAME = "eleva_bench_revocation"


def notification_delays(dsn: str, n: int) -> list[float]:
    """Milliseconds from an UPDATE's commit returning to its notification read."""
    delays = []
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as writer,
    ):
        listener.execute("LISTEN user_changes")
        user_id = writer.execute("SELECT min(id) FROM users").fetchone()[0]
        for i in range(n):
            writer.execute("UPDATE users SET bio = %s WHERE id = %s", (f"bio {i}", user_id))
            committed = time.perf_counter()
            for _ in listener.notifies(timeout=5, stop_after=1):
                delays.append((time.perf_counter() - committed) * 1000)
    return delays


def trial(pool: ThreadPoolExecutor, port: int, password: str, after: int) -> tuple[int, int]:
    """Log in, warm every worker, log out, then ``after`` requests: (answered 200, sent)."""
    login = {"login": "leaver", "password": password}
    token = call(port, "POST", "/api/v1/auth/login", login)[1]["access_token"]

    def me(_i: int) -> int:
        return call(port, "GET", "/api/v1/users/me", token=token)[0]

    assert set(pool.map(me, range(30))) == {200}
    assert call(port, "POST", "/api/v1/auth/logout", token=token)[0] == 204
    statuses = list(pool.map(me, range(after)))
    return statuses.count(200), len(statuses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="logins, each logged out")
    parser.add_argument("--after", type=int, default=10, help="requests after each logout")
    parser.add_argument("--load", action="store_true", help="keep the server busy meanwhile")
    args = parser.parse_args()

    rule("bench.revocation")
    print(f"machine: {machine()}")
    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-revocation-"))
    load = None
    server = None
    try:
        with scratch_database(DB_NAME) as database_url:
            env = production_env(database_url, str(log_dir / "media"))
            server = Server("eleva", "wsgi:app", env, log_dir)
            server.wait_ready("/health")
            port = server.port
            load_token = seed(port, database_url)
            password = secrets.token_urlsafe(16)
            account = {"email": "leaver@example.com", "username": "leaver", "password": password}
            assert call(port, "POST", "/api/v1/auth/register", account)[0] == 201
            if args.load:
                load = subprocess.Popen(
                    ["wrk", "-t1", "-c16", "-d3600s", "-H", f"Authorization: Bearer {load_token}",
                     f"{server.base}/api/v1/subjects/?page_size=20"],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1)
            print(
                f"gunicorn: gunicorn.conf.py, WEB_CONCURRENCY={server.n_workers}; "
                f"{args.trials} trials, {args.after} requests after each logout; "
                f"load: {'wrk, 16 connections' if args.load else 'none'}"
            )
            accepted = total = 0
            with ThreadPoolExecutor(16) as pool:
                for _ in range(args.trials):
                    accepted_now, sent = trial(pool, port, password, args.after)
                    accepted += accepted_now
                    total += sent
            dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
            delays = notification_delays(dsn, 200)
    finally:
        if load is not None:
            load.terminate()
            load.wait()
        if server is not None:
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    print()
    print(f"after a logout's 204: {accepted} of {total} requests with its token answered 200")
    print(
        f"commit → notification read by a listener ({len(delays)} updates): "
        f"median {median(delays):.3f} ms, p99 {percentile(delays, 99):.3f} ms, "
        f"max {max(delays):.3f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
