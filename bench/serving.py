"""The figures behind gunicorn.conf.py's worker: sync, gthread (4 and 8 threads), gevent.

    python -m bench.serving [--rounds 3] [--duration 5] [--slow 4,16,64] [--before CHECKOUT]

Load, memory, slow clients, keep-alive and issue 32's memory attack, for each variant.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    ROOT,
    Machine,
    Sample,
    Server,
    median,
    production_env,
    register,
    rule,
    scratch_database,
    servers,
    table,
    web_concurrency,
    wrk,
)

# gevent must patch the standard library before psycopg is imported: psycopg picks its
# wait function at import (psycopg/waiting.py, _is_select_patched). The file preloads the
# app in the master and its post_fork loads it in the worker before the patch; this
# variant turns both off (the command line cannot unset preload_app) and logs the choice.
GEVENT_CONF = """
import runpy
globals().update({k: v for k, v in runpy.run_path(%(conf)r).items() if not k.startswith("_")})
preload_app = False
_file_post_worker_init = post_worker_init


def post_fork(server, worker):
    pass


def post_worker_init(worker):
    import psycopg.waiting
    worker.log.info("psycopg wait function: %%s", psycopg.waiting.wait.__name__)
    _file_post_worker_init(worker)
"""


@dataclass
class Variant:
    name: str
    args: list[str]
    checkout: Path = ROOT


def variants(log_dir: Path, before: Path | None) -> list[Variant]:
    gevent_conf = log_dir / "gevent.conf.py"
    gevent_conf.write_text(GEVENT_CONF % {"conf": str(ROOT / "gunicorn.conf.py")})
    found = [
        # threads > 1 (the file says 8) would make gunicorn pick gthread for "sync".
        Variant("sync", ["--worker-class", "sync", "--threads", "1"]),
        Variant("gthread-4", ["--threads", "4"]),
        Variant("gthread-8", []),  # the file as it is: the Procfile's configuration
        Variant("gevent", ["--config", str(gevent_conf), "--worker-class", "gevent"]),
    ]
    if before:
        found.append(Variant("before", [], before.resolve()))
    return found


# -- slow clients ------------------------------------------------------------------------


class SlowClients(threading.Thread):
    """``n`` connections of one kind: "headers" send a request's headers a byte every
    0.5 s, "body" a POST's headers then its JSON body a byte every 0.5 s, "silent"
    connect and send nothing."""

    def __init__(self, port: int, kind: str, n: int) -> None:
        super().__init__(daemon=True)
        self.port, self.kind, self.n = port, kind, n
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.closed = 0  # connections the server closed meanwhile

    def run(self) -> None:
        socks = []
        for _ in range(self.n):
            try:
                socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
            except OSError:
                self.closed += 1
        head, drip = b"", b""
        if self.kind == "headers":
            drip = b"GET /health HTTP/1.1\r\nHost: bench\r\n" + b"X-Slow: 1\r\n" * 1000
        elif self.kind == "body":
            head = (
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                b"application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            drip = b'{"login": "' + b"x" * 980
        alive = []
        for sock in socks:
            try:
                sock.sendall(head)
                alive.append(sock)
            except OSError:
                self.closed += 1
        self.ready.set()
        at = 0
        while not self.stop.wait(0.5) and drip:
            for sock in list(alive):
                try:
                    sock.send(drip[at : at + 1])
                except OSError:
                    alive.remove(sock)
                    self.closed += 1
            at += 1
        for sock in socks:
            sock.close()


def probe(port: int, seconds: float) -> tuple[float, int, int]:
    """GET /health on a new connection every 0.2 s: (worst latency s, failed, asked)."""
    worst, failed, asked = 0.0, 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        asked += 1
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
        except (OSError, http.client.HTTPException):
            ok = False
        worst = max(worst, time.monotonic() - started)
        failed += not ok
        time.sleep(0.2)
    return worst, failed, asked


def slow_clients(port: int, kind: str, n: int, seconds: float) -> tuple[float, int, int, int]:
    clients = SlowClients(port, kind, n)
    clients.start()
    clients.ready.wait(30)
    time.sleep(1.0)
    try:
        worst, failed, asked = probe(port, seconds)
    finally:
        clients.stop.set()
        clients.join(30)
    time.sleep(1.0)  # the server frees what they held
    return worst, failed, asked, clients.closed


# -- keep-alive and the memory attack ----------------------------------------------------


def keep_alive(port: int, requests: int, idle: float) -> tuple[int, bool]:
    """Requests served on one connection, back to back; then whether it still serves one
    after ``idle`` seconds."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def one() -> bool:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
            response = http.client.HTTPResponse(sock, method="GET")
            response.begin()
            response.read()
            return response.status == 200 and not response.will_close
        except (OSError, http.client.HTTPException):
            return False

    try:
        served = 0
        while served < requests:
            kept = one()
            served += 1
            if not kept:
                return served, False
        time.sleep(idle)
        return served, one()
    finally:
        sock.close()


def memory_attack(server: Server, n: int, size: int, seconds: float) -> dict[str, float]:
    """``n`` anonymous connections each send a POST's headers announcing ``size`` bytes,
    then the body in 16 KiB pieces every 0.1 s; the workers' memory growth (all of them,
    peak over the run) and the answers they got."""
    baseline = server.memory()
    socks = []
    head = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(head)
        sock.setblocking(False)
        socks.append(sock)
    sent = dict.fromkeys(socks, 0)
    answered: dict[socket.socket, bytes] = {}
    peak = {"rss": 0, "uss": 0}
    chunk = b"x" * 16384
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in socks:
            if sock not in answered and sent[sock] < size:
                try:
                    sent[sock] += sock.send(chunk[: size - sent[sock]])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    answered.setdefault(sock, b"")
            try:
                data = sock.recv(64)
                if sock not in answered or data:
                    answered[sock] = answered.get(sock, b"") + data
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                answered.setdefault(sock, b"")
        now = server.memory()
        for key in peak:
            peak[key] = max(peak[key], sum(m[key] for m in now) - sum(m[key] for m in baseline))
        time.sleep(0.1)
    for sock in socks:
        sock.close()
    statuses = [data[9:12].decode() for data in answered.values() if data[:5] == b"HTTP/"]
    return {
        "rss_mb": peak["rss"] / 1024,
        "uss_mb": peak["uss"] / 1024,
        "answered": len(statuses),
        "statuses": ",".join(sorted(set(statuses))) or "—",
        "closed": len(answered) - len(statuses),
        "sent_mb": sum(sent.values()) / 2**20,
    }


# -- the bench ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--slow", default="4,16,64", help="slow clients of each kind")
    parser.add_argument("--probe-seconds", type=float, default=10)
    parser.add_argument("--attack", type=int, default=120, help="connections of the attack")
    parser.add_argument("--attack-seconds", type=float, default=15)
    parser.add_argument("--before", type=Path, help="also serve this checkout as it is")
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("bench.serving needs wrk (apt-get install wrk)")
    levels = [int(c) for c in args.connections.split(",")]
    slow_levels = [int(n) for n in args.slow.split(",")]

    machine = Machine()
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serving-")))
        found = variants(log_dir, args.before)
        urls = {}
        for checkout in {v.checkout for v in found}:
            name = "eleva_bench_serving" + ("" if checkout == ROOT else "_before")
            urls[checkout] = stack.enter_context(scratch_database(name, checkout))
        # One environment per checkout: the same secrets, so one token serves them all.
        envs = {c: production_env(url, log_dir / "media") for c, url in urls.items()}
        tokens: dict[Path, str] = {}
        waits: set[str] = set()

        @contextmanager
        def serving(v: Variant) -> Iterator[Server]:
            """One variant at a time: PostgreSQL's connections are shared with other work."""
            with servers() as running:
                server = Server(
                    v.name, log_dir, env=envs[v.checkout], checkout=v.checkout, args=v.args,
                    workers=args.web_concurrency,
                )  # fmt: skip
                running.append(server)
                server.wait_ready()
                if v.checkout not in tokens:
                    tokens[v.checkout] = register(server.port, "bench")[1]
                waits.update(line.rsplit(": ", 1)[1] for line in server.log().splitlines()
                             if "psycopg wait function" in line)  # fmt: skip
                yield server

        load: dict[tuple[str, int], list[Sample]] = {}
        memory = {}
        for round_no in range(args.rounds):
            shift = round_no % len(found)
            for v in found[shift:] + found[:shift]:
                with serving(v) as server:
                    auth = {"Authorization": f"Bearer {tokens[v.checkout]}"}
                    for c in levels:  # warm-up: pools, caches, code paths
                        wrk(server, "/api/v1/users/me", 2, c, auth)
                    for c in levels:
                        sample = wrk(server, "/api/v1/users/me", args.duration, c, auth)
                        load.setdefault((v.name, c), []).append(sample)
                    memory[v.name] = server.memory()
        slow, kept, attack = {}, {}, {}
        for v in found:
            with serving(v) as server:
                for n in slow_levels:
                    for kind in ("headers", "body", "silent"):
                        slow[(v.name, kind, n)] = slow_clients(
                            server.port, kind, n, args.probe_seconds
                        )
                kept[v.name] = keep_alive(server.port, 100, 10)
                attack[v.name] = memory_attack(server, args.attack, 2 * 2**20, args.attack_seconds)
        cases = [(v.name, c) for c in levels for v in found]

    rule("bench.serving")
    print(f"machine: {machine.describe()}")
    print(f"while running: {machine.activity()}")
    print(f"gunicorn.conf.py, WEB_CONCURRENCY={args.web_concurrency}, and on the command line:")
    for v in found:
        print(
            f"  {v.name:10} {' '.join(v.args) or '(nothing: the Procfile as it is)'}"
            + (f" in {v.checkout}" if v.checkout != ROOT else "")
        )
    print(f"  gevent workers' psycopg wait function: {', '.join(sorted(waits)) or 'not logged'}")

    print(
        f"\n1. GET /api/v1/users/me, wrk -t1, {args.duration:g} s a level; one variant served at a "
        f"time, {args.rounds} rounds, one variant later each round\n"
    )
    rows = []
    for case in cases:
        got = load[case]
        rows.append(
            [
                case[0],
                case[1],
                median([s.rps for s in got]),
                median([s.p50 for s in got]),
                median([s.p99 for s in got]),
                median([s.cpu_ms for s in got]),
                sum(s.errors for s in got),
                " ".join(f"{s.p99:.0f}" for s in got),
            ]
        )
    table(
        ["", "conns", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "non-2xx/socket errors",
         "p99 by round"],
        rows,
    )  # fmt: skip

    print("\n2. Memory per worker after the load, MB (median of the workers; USS: private pages)\n")
    table(
        ["", "RSS", "USS", "USS, all workers"],
        [
            [
                name,
                median([m["rss"] for m in got]) / 1024,
                median([m["uss"] for m in got]) / 1024,
                sum(m["uss"] for m in got) / 1024,
            ]
            for name, got in memory.items()
        ],
    )

    print(
        f"\n3. Slow clients (a byte every 0.5 s; silent: nothing) while GET /health is asked "
        f"every 0.2 s for {args.probe_seconds:g} s on new connections (10 s timeout):\n"
        "   worst latency in s, failed/asked, slow connections the server closed\n"
    )
    header = [""] + [f"{kind} ×{n}" for n in slow_levels for kind in ("headers", "body", "silent")]
    rows = []
    for v in found:
        row = [v.name]
        for n in slow_levels:
            for kind in ("headers", "body", "silent"):
                worst, failed, asked, closed = slow[(v.name, kind, n)]
                row.append(f"{worst:.2f} {failed}/{asked}" + (f" c{closed}" if closed else ""))
        rows.append(row)
    table(header, rows)

    print("\n4. Keep-alive: requests served on one connection (of 100), then one after 10 s idle\n")
    table(
        ["", "served", "after 10 s idle"],
        [[name, served, "served" if after else "closed"] for name, (served, after) in kept.items()],
    )

    print(
        f"\n5. Memory attack (issue 32, item 6): {args.attack} anonymous connections, each a POST "
        f"announcing 2 MiB, the body sent slowly, for {args.attack_seconds:g} s\n"
    )
    table(
        [
            "",
            "growth RSS MB",
            "growth USS MB",
            "answered",
            "statuses",
            "closed unanswered",
            "MiB sent",
        ],
        [
            [
                name,
                a["rss_mb"],
                a["uss_mb"],
                a["answered"],
                a["statuses"],
                a["closed"],
                a["sent_mb"],
            ]
            for name, a in attack.items()
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
