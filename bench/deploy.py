"""A deploy under load: what happens to requests when gunicorn gets SIGTERM.

    python -m bench.deploy [--clients 32] [--before 3] [--after 4] [--runs 2]

Eléva (production configuration, PostgreSQL) served as the Procfile runs it, then the
same with gunicorn's own sync worker (``--worker-class sync``), each ``--runs`` times.
``--clients`` threads each send ``GET /api/v1/users/me`` on a new connection, one after
the other, for ``--before`` seconds; then the master gets SIGTERM (a deploy) and the
clients go on for ``--after`` seconds. Every request after the signal ends one way:

  answered   a complete response (200);
  reset      the connection was accepted, then closed or reset without a response:
             a request lost (the figure that must be 0);
  refused    the connection was refused: no worker listening any more. On a PaaS the
             router sends new requests to the new dyno by then; this cannot be saved
             by the server, only shortened.
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
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench._common import machine, production_env, rule, scratch_database
from bench.http import Server, seed, web_concurrency

DB_NAME = "eleva_bench_deploy"
VARIANTS = {"eleva": [], "sync": ["--worker-class", "sync"]}


def client(port: int, token: str, stop: threading.Event, signalled: list, tally: Counter) -> None:
    while not stop.is_set():
        after = bool(signalled)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            outcome = "answered" if response.status == 200 else f"status {response.status}"
        except ConnectionRefusedError:
            outcome = "refused"
            time.sleep(0.05)
        except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
            outcome = "reset"
        except OSError as exc:
            outcome = type(exc).__name__
        finally:
            conn.close()
        if after:
            tally[outcome] += 1


def deploy(name: str, env: dict, log_dir: Path, args: argparse.Namespace, run: int) -> Counter:
    server = Server(
        f"{name}-{run}", "wsgi:app", env, log_dir, workers=args.web_concurrency,
        args=VARIANTS[name],
    )  # fmt: skip
    server.wait_ready("/health")
    token = args.token or seed(server.port, args.database_url)
    args.token = token
    stop, signalled, tally = threading.Event(), [], Counter()
    threads = [
        threading.Thread(target=client, args=(server.port, token, stop, signalled, tally))
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(args.before)
    signalled.append(time.monotonic())
    server.process.send_signal(signal.SIGTERM)
    time.sleep(args.after)
    stop.set()
    for thread in threads:
        thread.join(40)
    server.process.wait(40)
    server.stop()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=4.0, help="seconds of load after")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()
    args.token = None

    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-deploy-"))
    results: dict[str, list[Counter]] = {name: [] for name in VARIANTS}
    try:
        with scratch_database(DB_NAME) as database_url:
            args.database_url = database_url
            env = production_env(database_url, str(log_dir / "media"))
            for run in range(args.runs):
                for name in VARIANTS:
                    results[name].append(deploy(name, env, log_dir, args, run))
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)

    rule("bench.deploy")
    print(f"machine: {machine()}")
    print(
        f"gunicorn.conf.py (+ variant), WEB_CONCURRENCY={args.web_concurrency}; "
        f"{args.clients} clients, GET /api/v1/users/me on new connections; SIGTERM after "
        f"{args.before:g} s; outcomes of the requests begun after it, {args.after:g} s\n"
    )
    for name, tallies in results.items():
        for run, tally in enumerate(tallies, 1):
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
            print(f"  {name:6} run {run}: {outcomes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
