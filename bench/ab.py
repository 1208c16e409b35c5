"""Did a change help? Two checkouts of Eléva under the same load, alternating.

    git worktree add /tmp/before <commit>
    python -m bench.ab /tmp/before [AFTER] [--path /api/v1/subjects/?page_size=20]
                                           [--rounds 5] [--duration 4]

gunicorn serves the ``wsgi:app`` of checkout BEFORE and of AFTER (default: this one),
each its own code in this virtual environment, as the Procfile runs it (each checkout's
own gunicorn.conf.py, ``$WEB_CONCURRENCY`` as in ``bench.http``), next to the bare Flask
floor (this checkout's gunicorn.conf.py). Both apps share one fresh PostgreSQL database (eleva_bench_ab,
dropped at the end) migrated by this checkout: compare commits with the same
migrations. One user with 1,000 subjects, as in ``bench.http``. wrk loads each server
for ``--duration`` seconds, in a different order every round; the workers' CPU per
request of every round is printed, with medians of CPU and req/s and their ratios to the
floor.

bench.http compares targets within one run; this compares code: it is how
bench/README.md's before/after figures of single commits were measured.
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
import tempfile
from pathlib import Path

from bench._common import ROOT, machine, median, production_env, rule, scratch_database
from bench.http import (
    Server,
    Target,
    add_server_arguments,
    describe_server,
    measure,
    seed,
    server_settings,
)

DB_NAME = "eleva_bench_ab"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="a checkout (e.g. a git worktree of an older commit)")
    parser.add_argument("after", nargs="?", default=str(ROOT), help="default: this checkout")
    parser.add_argument("--path", default="/api/v1/subjects/?page_size=20")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=4)
    add_server_arguments(parser)
    args = parser.parse_args()
    checkouts = {
        "before": str(Path(args.before).resolve()),
        "after": str(Path(args.after).resolve()),
    }
    for checkout in checkouts.values():
        if not Path(checkout, "wsgi.py").is_file():
            parser.error(f"{checkout} is not a checkout of Eléva (no wsgi.py)")
    if shutil.which("wrk") is None:
        parser.error("bench.ab needs wrk (sudo apt-get install wrk)")

    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-ab-"))
    servers: list[Server] = []
    try:
        with scratch_database(DB_NAME) as database_url:
            env = production_env(database_url, str(log_dir / "media"))
            settings = server_settings(args)
            bare = Server("bare", "bench.bare_app:app", {}, log_dir, **settings)
            servers.append(bare)
            apps: dict[str, Server] = {}
            for key, checkout in checkouts.items():
                apps[key] = Server(key, "wsgi:app", env, log_dir, cwd=checkout, **settings)
                servers.append(apps[key])
            bare.wait_ready("/")
            for server in apps.values():
                server.wait_ready("/health")
            auth = {"Authorization": f"Bearer {seed(apps['after'].port, database_url)}"}
            targets = [Target("bare", "bare Flask GET /", bare, "/", {})] + [
                Target(key, f"{key}: {checkouts[key]}", server, args.path, auth)
                for key, server in apps.items()
            ]
            for target in targets:  # warm-up: pools, caches, prepared statements
                measure(target, 1, args.connections, True)
            samples: dict[str, list[tuple[float, float]]] = {t.key: [] for t in targets}
            for round_no in range(args.rounds):
                shift = round_no % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    sample = measure(target, args.duration, args.connections, True)
                    if sample.bad:
                        raise SystemExit(f"{target.label}: {sample.bad} failed requests")
                    samples[target.key].append((sample.server_cpu_ms, sample.rps))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    rule(f"bench.ab GET {args.path}")
    print(f"machine: {machine()}")
    print(f"gunicorn: {describe_server(args)}")
    print(f"{args.rounds} rounds × {args.duration} s per server, wrk -t1 -c{args.connections}\n")
    floor_cpu = median([cpu for cpu, _ in samples["bare"]])
    floor_rps = median([rps for _, rps in samples["bare"]])
    print(f"{'':58}{'CPU ms/req':>11}{'req/s':>8}{'×(a) CPU':>10}{'×(a) req/s':>11}")
    for target in targets:
        cpu = median([c for c, _ in samples[target.key]])
        rps = median([r for _, r in samples[target.key]])
        print(
            f"{target.label[:58]:58}{cpu:>11.3f}{rps:>8.0f}"
            f"{floor_cpu / cpu:>10.3f}{rps / floor_rps:>11.3f}"
        )
        print(f"{'':4}CPU ms/req by round: {', '.join(f'{c:.3f}' for c, _ in samples[target.key])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
