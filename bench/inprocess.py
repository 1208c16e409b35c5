"""CPU time per request in process: the WSGI apps called directly, no server, no client.

    python -m bench.inprocess [-n 3000] [--rounds 7]

The four targets of bench.http — (a) the bare Flask app, (b) GET /health, (c) GET
/api/v1/users/me, (d) GET /api/v1/subjects/?page_size=20 for a user with 1,000
subjects — each called as ``app(environ, start_response)`` ``-n`` times per round with
a prebuilt environ, in rounds that alternate the targets; ``time.process_time`` per
call, median and minimum over the rounds. Production configuration on a fresh
PostgreSQL database (eleva_bench_inprocess, dropped at the end).

No load generator or gunicorn shares the CPU, so the figures are steadier than
bench.http's and show what the app itself costs; bench.http shows what a worker
spends under load, where every round trip to the database costs several times more
(a blocked worker resumes with cold caches).
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
import statistics
import tempfile
import time
from collections.abc import Callable

from werkzeug.test import EnvironBuilder

from bench._common import (
    machine,
    make_app,
    production_env,
    rule,
    scratch_database,
    seed_user_with_subjects,
)
from bench.bare_app import app as bare_app

N_SUBJECTS = 1000


def call(app: Callable, environ: dict) -> str:
    statuses: list[str] = []
    body = app(dict(environ), lambda status, _headers, _exc=None: statuses.append(status))
    try:
        b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return statuses[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="calls per target and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="eleva-bench-inprocess-") as media,
        scratch_database("eleva_bench_inprocess") as url,
    ):
        app = make_app(production_env(url, media, BCRYPT_ROUNDS="4"))
        try:
            auth = seed_user_with_subjects(app, N_SUBJECTS)
            targets = {
                "(a) bare Flask GET /": (bare_app, "/", {}),
                "(b) GET /health": (app, "/health", {}),
                "(c) GET /api/v1/users/me": (app, "/api/v1/users/me", auth),
                "(d) GET /api/v1/subjects/ (20 of 1,000)": (
                    app,
                    "/api/v1/subjects/?page_size=20",
                    auth,
                ),
            }
            environs = {
                label: (target, EnvironBuilder(path=path, headers=headers).get_environ())
                for label, (target, path, headers) in targets.items()
            }
            for label, (target, environ) in environs.items():
                status = call(target, environ)
                assert status.startswith("200"), (label, status)
                for _ in range(args.n // 5):  # warm-up: caches, prepared statements
                    call(target, environ)
            samples: dict[str, list[float]] = {label: [] for label in environs}
            for round_no in range(args.rounds):
                order = list(environs)
                order = order[round_no % len(order) :] + order[: round_no % len(order)]
                for label in order:
                    target, environ = environs[label]
                    started = time.process_time()
                    for _ in range(args.n):
                        call(target, environ)
                    samples[label].append((time.process_time() - started) / args.n * 1e6)
        finally:
            with app.app_context():
                from eleva.data.db import db

                db.engine.dispose()

    rule("bench.inprocess")
    print(f"machine: {machine()}")
    print(f"{args.rounds} rounds × {args.n} calls per target, CPU time (process_time)\n")
    floor = statistics.median(samples["(a) bare Flask GET /"])
    print(f"{'target':44s} {'median µs':>10s} {'min µs':>8s} {'×(a)':>6s}")
    for label, values in samples.items():
        middle = statistics.median(values)
        print(f"{label:44s} {middle:10.1f} {min(values):8.1f} {floor / middle:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
