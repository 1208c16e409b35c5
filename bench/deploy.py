"""A deploy under load: SIGTERM to gunicorn's master while clients go on sending.

    python -m bench.deploy [--clients 32] [--before 3] [--after 5] [--runs 3] [--gunicorn ARGS]

Requests (each on a new connection) begun after the signal end answered, reset (accepted,
then closed unanswered) or refused; those in flight at the signal are counted apart."""

from __future__ import annotations

import argparse
import http.client
import shlex
import signal
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench.harness import (
    Machine,
    Server,
    production_env,
    register,
    rule,
    scratch_database,
    table,
    web_concurrency,
)


def one(port: int, token: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        return "answered" if response.status == 200 else f"status {response.status}"
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionError, http.client.RemoteDisconnected):
        return "reset"  # reset, aborted, broken pipe, or closed before a status line
    except TimeoutError:
        return "timeout"
    finally:
        conn.close()


def deploy(server: Server, token: str, clients: int, before: float, after: float) -> dict:
    """Load, SIGTERM, more load: outcomes by phase, and when the master exited."""
    stop = threading.Event()
    signalled: list[float] = []
    tally: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    first: dict[str, float] = {}  # by outcome: when it first and last ended, after the signal
    last: dict[str, float] = {}

    def client() -> None:
        while not stop.is_set():
            began_after = bool(signalled)
            outcome = one(server.port, token)
            phase = "after" if began_after else "in flight" if signalled else "before"
            with lock:
                tally[(phase, outcome)] += 1
                if signalled:
                    ended = time.monotonic() - signalled[0]
                    last[outcome] = max(last.get(outcome, 0.0), ended)
                    first[outcome] = min(first.get(outcome, ended), ended)
            if outcome == "refused":
                time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(before)
    signalled.append(time.monotonic())
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(60)
    exited = time.monotonic() - signalled[0]
    time.sleep(max(0.0, after - exited))
    stop.set()
    for thread in threads:
        thread.join(60)
    return {"tally": tally, "exited": exited, "first": first, "last": last}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--before", type=float, default=3, help="seconds of load before")
    parser.add_argument("--after", type=float, default=5, help="seconds of load after")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--gunicorn", default="", help='settings on top of the file, e.g. "-k sync"'
    )
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()

    machine = Machine()
    results = []
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-deploy-")))
        url = stack.enter_context(scratch_database("eleva_bench_deploy"))
        env = production_env(url, log_dir / "media")
        token = ""
        for run in range(args.runs):
            server = Server(
                f"run{run}",
                log_dir,
                env=env,
                args=shlex.split(args.gunicorn),
                workers=args.web_concurrency,
            )
            try:
                server.wait_ready()
                token = token or register(server.port, "bench")[1]
                results.append(deploy(server, token, args.clients, args.before, args.after))
            finally:
                server.stop()

    rule("bench.deploy")
    print(f"machine: {machine.describe()}")
    print(f"while running: {machine.activity()}")
    print(
        f"gunicorn as the Procfile runs it{' + ' + args.gunicorn if args.gunicorn else ''}, "
        f"WEB_CONCURRENCY={args.web_concurrency}; {args.clients} clients, GET "
        f"/api/v1/users/me on a new connection each; SIGTERM after {args.before:g} s, "
        f"clients go on for {args.after:g} s\n"
    )
    outcomes = sorted({o for r in results for (_, o) in r["tally"]})
    rows = []
    for run, result in enumerate(results, 1):
        for phase in ("before", "in flight", "after"):
            counts = [result["tally"].get((phase, o), 0) for o in outcomes]
            rows.append([f"run {run}: {phase}", *counts])
    table(["requests", *outcomes], rows)
    print("\nseconds after the signal:")
    for run, result in enumerate(results, 1):
        spans = ", ".join(
            f"{o} {result['first'][o]:.2f}–{result['last'][o]:.2f}" for o in sorted(result["first"])
        )
        print(f"  run {run}: {spans}; the master exited at {result['exited']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
