"""What one round trip to PostgreSQL costs a gunicorn worker, by the path it takes.

    python -m bench.db_paths [--duration 3] [--rounds 3]

gunicorn (bench.http's settings: the project's gunicorn.conf.py) serves bench/db_app.py,
a bare Flask app whose routes run ``SELECT 1`` through: the Flask-SQLAlchemy session
(BEGIN, SELECT, ROLLBACK), a SQLAlchemy Core connection in autocommit, psycopg on a
connection taken from SQLAlchemy's pool, and psycopg on a connection the worker keeps.
wrk loads each route in turn (rounds in rotating order); the table gives the workers'
CPU per request (median) and what each path adds to the floor (``GET /`` returning the
same JSON). This is why Eléva's hot reads run on the driver (eleva/data/fastread.py):
under load a round trip through SQLAlchemy costs the worker several times what the
same query costs on psycopg, far more than it does in a quiet loop in process.
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
import shutil
import statistics
import tempfile
from pathlib import Path

from bench import http as bench_http
from bench._common import machine, rule, scratch_database

PATHS = [
    ("/", "floor: no query"),
    ("/session", "Flask-SQLAlchemy session (BEGIN, SELECT 1, ROLLBACK)"),
    ("/core", "SQLAlchemy Core connection, autocommit"),
    ("/pooled-driver", "psycopg on a pooled connection, autocommit"),
    ("/kept-driver", "psycopg on the worker's own connection"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.db_paths needs wrk (apt-get install wrk)")

    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-db-paths-"))
    server = None
    try:
        with scratch_database("eleva_bench_db_paths") as url:
            server = bench_http.Server("db", "bench.db_app:app", {"DATABASE_URL": url}, log_dir)
            server.wait_ready("/")
            targets = [bench_http.Target(p, label, server, p, {}) for p, label in PATHS]
            for target in targets:  # warm-up: pools, kept connections, code paths
                bench_http.measure(target, 1, 4, use_wrk=True)
            cpu: dict[str, list[float]] = {t.key: [] for t in targets}
            for round_no in range(args.rounds):
                shift = round_no % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    sample = bench_http.measure(target, args.duration, 4, use_wrk=True)
                    cpu[target.key].append(sample.server_cpu_ms * 1000)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    rule("bench.db_paths")
    print(f"machine: {machine()}")
    print(f"gunicorn.conf.py; wrk -t1 -c4; {args.rounds} × {args.duration} s per path\n")
    floor = statistics.median(cpu["/"])
    print(f"{'path':56s} {'CPU µs/req':>10s} {'+ floor':>8s}")
    for path, label in PATHS:
        value = statistics.median(cpu[path])
        print(f"{label:56s} {value:10.0f} {value - floor:+8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
