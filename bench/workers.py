"""Which gunicorn worker model: throughput, latency, memory and slow clients, side by side.

    python -m bench.workers [--rounds 2] [--duration 4] [--connections 4,16,64]

Eléva (production configuration, PostgreSQL) served by the project's gunicorn.conf.py,
each variant changing only the worker model on the command line:

  eleva       the file as it is: ``eleva.serving.Worker`` (sync, buffering requests),
              $WEB_CONCURRENCY workers;
  sync        gunicorn's own sync worker, $WEB_CONCURRENCY workers;
  gthread     gunicorn's threaded worker, $WEB_CONCURRENCY workers × 4 threads;
  gthread/2   gunicorn's threaded worker, one worker per core × 4 threads.

1. wrk on ``GET /api/v1/users/me`` at each ``--connections``, variants alternating,
   ``--rounds`` × ``--duration`` s each: req/s, p50/p99 (medians of rounds), the
   workers' CPU per request and errors. wrk keeps connections alive where the server
   does (gthread); the sync workers close after every response, as they would behind a
   router.
2. Memory per worker after the load: RSS and USS (the pages that worker alone holds).
3. Slow clients: 8 connections trickling headers and 4 trickling a JSON body (a byte
   every 0.5 s), while a client asks ``GET /health`` every 0.2 s for ``--slow-seconds``:
   the worst latency and how many of those requests failed (10 s timeout).
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
import http.client
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from bench._common import machine, median, production_env, rule, scratch_database
from bench.http import Server, Target, measure, memory_kb, seed, web_concurrency

DB_NAME = "eleva_bench_workers"


def variants(n: int) -> dict[str, tuple[int, list[str]]]:
    cores = os.cpu_count() or 1
    return {
        "eleva": (n, []),
        "sync": (n, ["--worker-class", "sync"]),
        "gthread": (n, ["--worker-class", "gthread", "--threads", "4"]),
        "gthread/2": (cores, ["--worker-class", "gthread", "--threads", "4"]),
    }


class Trickler(threading.Thread):
    def __init__(self, port: int, head: bytes, drip: bytes) -> None:
        super().__init__(daemon=True)
        self.port, self.head, self.drip = port, head, drip
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
                sock.sendall(self.head)
                while not self.stop.wait(0.5):
                    sock.sendall(self.drip)
        except OSError:
            pass


def slow_clients(port: int, seconds: float) -> tuple[float, int, int]:
    """(worst /health latency in s, failed, asked) while 12 slow clients trickle."""
    slow = [
        Trickler(port, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n") for _ in range(8)
    ] + [
        Trickler(
            port,
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            b" ",
        )
        for _ in range(4)
    ]
    for client in slow:
        client.start()
    time.sleep(1.0)
    worst, failed, asked = 0.0, 0, 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            asked += 1
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            worst = max(worst, time.monotonic() - started)
            failed += not ok
            time.sleep(0.2)
    finally:
        for client in slow:
            client.stop.set()
    return worst, failed, asked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--connections", default="4,16,64")
    parser.add_argument("--slow-seconds", type=float, default=10.0)
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("bench.workers needs wrk (sudo apt-get install wrk)")
    levels = [int(c) for c in args.connections.split(",")]

    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-workers-"))
    servers: dict[str, Server] = {}
    samples: dict[tuple[str, int], list] = {}
    memory: dict[str, list[dict[str, int]]] = {}
    slow: dict[str, tuple[float, int, int]] = {}
    try:
        with scratch_database(DB_NAME) as database_url:
            env = production_env(database_url, str(log_dir / "media"))
            for name, (workers, extra) in variants(args.web_concurrency).items():
                servers[name] = Server(
                    name.replace("/", "-"), "wsgi:app", env, log_dir, workers=workers, args=extra
                )
            for server in servers.values():
                server.wait_ready("/health")
            first = next(iter(servers.values()))
            auth = {"Authorization": f"Bearer {seed(first.port, database_url)}"}
            targets = {
                name: Target(name, name, server, "/api/v1/users/me", auth)
                for name, server in servers.items()
            }
            for target in targets.values():
                measure(target, 1, max(levels), True)
            names = list(targets)
            for round_no in range(args.rounds):
                for connections in levels:
                    shift = round_no % len(names)
                    for name in names[shift:] + names[:shift]:
                        sample = measure(targets[name], args.duration, connections, True)
                        samples.setdefault((name, connections), []).append(sample)
            for name, server in servers.items():
                memory[name] = [memory_kb(pid) for pid in server.workers()]
            for name, server in servers.items():
                slow[name] = slow_clients(server.port, args.slow_seconds)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    rule("bench.workers")
    print(f"machine: {machine()}")
    print(f"gunicorn.conf.py + worker model; WEB_CONCURRENCY={args.web_concurrency}")
    for name, (workers, extra) in variants(args.web_concurrency).items():
        print(f"  {name:10} {workers} workers {' '.join(extra) or '(the file as it is)'}")
    print(
        f"\n1. GET /api/v1/users/me, wrk -t1, {args.rounds} × {args.duration} s "
        "per variant and level (medians)\n"
    )
    print(
        f"{'variant':11}{'conns':>6}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}{'errors':>7}"
    )
    for connections in levels:
        for name in servers:
            rows = samples[(name, connections)]
            print(
                f"{name:11}{connections:>6}{median([s.rps for s in rows]):>8.0f}"
                f"{median([s.p50 for s in rows]):>8.2f}{median([s.p99 for s in rows]):>8.2f}"
                f"{median([s.server_cpu_ms for s in rows]):>11.3f}{sum(s.bad for s in rows):>7}"
            )
    print("\n2. Memory per worker after the load (median; MB)\n")
    for name, rows in memory.items():
        rss = median([r["rss"] for r in rows]) / 1024
        uss = median([r["uss"] for r in rows]) / 1024
        print(f"  {name:10} RSS {rss:6.1f}  USS {uss:6.1f}")
    print(
        f"\n3. Slow clients: 8 trickling headers + 4 trickling a body; GET /health every "
        f"0.2 s for {args.slow_seconds:g} s\n"
    )
    for name, (worst, failed, asked) in slow.items():
        print(f"  {name:10} worst {worst * 1000:8.0f} ms   failed {failed}/{asked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
