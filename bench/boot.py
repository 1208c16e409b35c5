"""What a gunicorn worker's boot costs, and what recycling workers costs under load.

    python -m bench.boot [--rounds 3] [--duration 8] [--connections 16]

1. **Boot**: the project's gunicorn.conf.py serving Eléva (production configuration,
   PostgreSQL), once with ``preload_app`` as the file sets it and once with the opposite.
   For each: the master's CPU seconds, each worker's CPU seconds when the server is ready
   (imports, ``create_app`` and the bcrypt and common-password warm-ups land in every
   worker without preloading, in the master with it), the seconds from start to ready,
   and memory per worker (RSS, and USS: the pages the worker alone holds; the app's
   pages forked from the master are shared until written).
2. **Recycling**: two servers as the file sets them but for ``max_requests``: 200 (+ up
   to 20 jitter; often, so that a short run sees many recycles) against 0 (never); wrk on
   ``GET /api/v1/users/me`` at full load, alternating, ``--rounds`` × ``--duration`` s
   each; the workers' CPU per request (workers recycled meanwhile included) and the
   boots. From the difference: the CPU one recycle costs (the fork, cold caches, new
   database connections), and what that is at the 2,000 requests (+ up to 200) the file
   had before. Then the workers' memory of the server that never recycles, before and
   after the load.

Figures for bench/README.md ("Serving"): the reason gunicorn.conf.py preloads the app
and does not recycle workers.
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
import runpy
import shutil
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, machine, median, production_env, rule, scratch_database
from bench.http import (
    Server,
    Target,
    config_with,
    cpu_seconds,
    measure,
    memory_kb,
    seed,
    web_concurrency,
)

DB_NAME = "eleva_bench_boot"
OLD_MAX_REQUESTS = 2000  # + up to 200 jitter: what gunicorn.conf.py had before
MEASURED_MAX_REQUESTS = 200
MEASURED_JITTER = 20


def boot(name: str, env: dict[str, str], log_dir: Path, workers: int, args: list[str]) -> dict:
    started = time.monotonic()
    server = Server(name, "wsgi:app", env, log_dir, workers=workers, args=args)
    try:
        server.wait_ready("/health")
        ready = time.monotonic() - started
        master = cpu_seconds([server.process.pid])
        pids = server.workers()
        per_worker = [cpu_seconds([pid]) for pid in pids]
        memory = [memory_kb(pid) for pid in pids]
    finally:
        server.stop()
    return {
        "ready_s": ready,
        "master_cpu": master,
        "worker_cpu": median(per_worker),
        "rss_mb": median([m["rss"] for m in memory]) / 1024,
        "uss_mb": median([m["uss"] for m in memory]) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("bench.boot needs wrk (sudo apt-get install wrk)")
    preload = bool(runpy.run_path(str(ROOT / "gunicorn.conf.py")).get("preload_app"))

    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-boot-"))
    servers: list[Server] = []
    try:
        with scratch_database(DB_NAME) as database_url:
            env = production_env(database_url, str(log_dir / "media"))
            boots = {}
            for flag in (preload, not preload, preload, not preload):
                name = f"preload={flag}"
                result = boot(
                    name, env, log_dir, args.web_concurrency,
                    config_with(log_dir, name, preload_app=flag),
                )  # fmt: skip
                boots.setdefault(flag, []).append(result)

            recycled = Server(
                "recycled", "wsgi:app", env, log_dir, workers=args.web_concurrency,
                args=config_with(
                    log_dir, "recycled", max_requests=MEASURED_MAX_REQUESTS,
                    max_requests_jitter=MEASURED_JITTER,
                ),
            )  # fmt: skip
            servers.append(recycled)
            kept = Server(
                "kept", "wsgi:app", env, log_dir, workers=args.web_concurrency,
                args=config_with(log_dir, "kept", max_requests=0),
            )  # fmt: skip
            servers.append(kept)
            recycled.wait_ready("/health")
            kept.wait_ready("/health")
            auth = {"Authorization": f"Bearer {seed(kept.port, database_url)}"}
            path = "/api/v1/users/me"
            targets = [
                Target("recycled", f"max_requests={MEASURED_MAX_REQUESTS}", recycled, path, auth),
                Target("kept", "max_requests=0", kept, path, auth),
            ]
            for target in targets:
                measure(target, 2, args.connections, True)
            memory_before = [memory_kb(pid) for pid in kept.workers()]
            samples: dict[str, list] = {t.key: [] for t in targets}
            for round_no in range(args.rounds):
                order = targets if round_no % 2 == 0 else targets[::-1]
                for target in order:
                    sample = measure(target, args.duration, args.connections, True)
                    if sample.bad:
                        raise SystemExit(f"{target.label}: {sample.bad} failed requests")
                    samples[target.key].append(sample)
            memory_after = [memory_kb(pid) for pid in kept.workers()]
            served_per_worker = sum(s.requests for s in samples["kept"]) / len(kept.workers())
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    rule("bench.boot")
    print(f"machine: {machine()}")
    print(
        f"gunicorn.conf.py, Eléva in production configuration, WEB_CONCURRENCY={args.web_concurrency}"
    )
    print("\n1. Boot (medians of 2 starts each)\n")
    print(
        f"{'':16}{'ready s':>9}{'master CPU s':>14}{'CPU s per worker':>18}"
        f"{'RSS MB/worker':>15}{'USS MB/worker':>15}"
    )
    for flag, results in boots.items():

        def med(key: str, results: list[dict] = results) -> float:
            return median([r[key] for r in results])

        print(
            f"{f'preload_app={flag}':16}{med('ready_s'):>9.2f}{med('master_cpu'):>14.2f}"
            f"{med('worker_cpu'):>18.3f}{med('rss_mb'):>15.1f}{med('uss_mb'):>15.1f}"
        )
    print(
        f"\n2. Recycling: GET {path}, wrk -t1 -c{args.connections}, "
        f"{args.rounds} × {args.duration} s each, alternating\n"
    )
    print(f"{'':24}{'req/s':>8}{'CPU ms/req':>12}{'boots':>7}   CPU ms/req by round")
    cpu = {}
    for target in targets:
        rows = samples[target.key]
        cpu[target.key] = median([s.server_cpu_ms for s in rows])
        print(
            f"{target.label:24}{median([s.rps for s in rows]):>8.0f}{cpu[target.key]:>12.3f}"
            f"{sum(s.boots for s in rows):>7}   "
            + ", ".join(f"{s.server_cpu_ms:.3f}" for s in rows)
        )
    rows = samples["recycled"]
    boots_seen = sum(s.boots for s in rows)
    served = sum(s.requests for s in rows)
    extra_ms = (cpu["recycled"] - cpu["kept"]) * served / max(boots_seen, 1)
    at_old = extra_ms / ((OLD_MAX_REQUESTS + 100) * cpu["kept"])
    print(
        f"\none recycle costs {extra_ms:.0f} ms of worker CPU ({boots_seen} boots in "
        f"{served:,} requests); at max_requests={OLD_MAX_REQUESTS} (+ up to 200) that is "
        f"{100 * at_old:+.2f} % CPU per request at full load (kept only if < 2 %)"
    )

    def mb(rows: list[dict], key: str) -> float:
        return median([r[key] for r in rows]) / 1024

    print(
        f"\nmemory per worker, max_requests=0, after warm-up → after "
        f"{served_per_worker:,.0f} more requests each: RSS {mb(memory_before, 'rss'):.1f} → "
        f"{mb(memory_after, 'rss'):.1f} MB, USS {mb(memory_before, 'uss'):.1f} → "
        f"{mb(memory_after, 'uss'):.1f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
