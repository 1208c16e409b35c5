"""Throughput and latency over HTTP, against gunicorn and PostgreSQL, in one run.

    python -m bench.http [--duration 5] [--rounds 3] [--connections 4] [--quick]
                         [--web-concurrency N] [--gunicorn "--threads 4 ..."]

Four targets, each served by gunicorn as the Procfile runs it (``gunicorn <app>`` reading
the project's gunicorn.conf.py, ``$WEB_CONCURRENCY`` set to what a PaaS would give this
machine: 2 × cores + 1), the bare app with the same settings:

  (a) bench/bare_app.py — a bare Flask app returning a small JSON: the floor;
  (b) GET /health;
  (c) GET /api/v1/users/me, authenticated;
  (d) GET /api/v1/subjects/?page_size=20, authenticated, for a user with 1,000 subjects.

For each: requests/s, p50 and p99 latency, and the CPU time the gunicorn workers spent
per request (utime + stime from /proc/<pid>/stat, before and after the load, workers
recycled meanwhile included), each also as a ratio of (a). On a 2-core machine the load generator competes with the server, so
the CPU-based ratio is the fairer one. The load generator is wrk when installed
(`apt-get install wrk`), else a Python one (slower: it takes more of the CPU).
"""

# The path must be fixed before anything imports `http`: imports follow code here.
# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# `python bench/http.py` puts bench/ first on sys.path, where this file would shadow the
# standard library's `http` package. Take bench/ off the path and put the project on it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import http.client
import json
import multiprocessing
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench._common import (
    PG_ADMIN_URL,
    ROOT,
    machine,
    median,
    percentile,
    production_env,
    rule,
    scratch_database,
    verdict,
)

DB_NAME = "eleva_bench_http"
N_SUBJECTS = 1_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_USERS_ME = 0.55
TARGET_SUBJECTS = 0.40
WRK_MISSING = (
    "wrk is not installed: using the Python load generator, which needs more CPU than "
    "wrk and so leaves the server less of this machine. For better figures install it: "
    "`sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk` (macOS)."
)


# -- gunicorn ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_concurrency() -> int:
    """What a PaaS sets $WEB_CONCURRENCY to on a machine like this one: 2 × cores + 1
    (Heroku's Python buildpack on a dyno with this many cores and the memory for it)."""
    return 2 * (os.cpu_count() or 1) + 1


class Server:
    """gunicorn serving ``app_spec`` as the Procfile does: ``gunicorn <app>`` from the
    checkout ``cwd``, which reads that checkout's gunicorn.conf.py, with ``$PORT`` and
    ``$WEB_CONCURRENCY`` set. ``args``: command-line settings on top of the file (they
    override it), for comparing settings; none by default."""

    def __init__(
        self,
        name: str,
        app_spec: str,
        env: dict[str, str],
        log_dir: Path,
        cwd: str | Path = ROOT,
        *,
        workers: int | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.n_workers = workers or web_concurrency()
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *(args or []), app_spec],
            cwd=cwd,
            env={
                **os.environ,
                **env,
                "PORT": str(self.port),
                "WEB_CONCURRENCY": str(self.n_workers),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if call(self.port, "GET", path)[0] == 200 and len(self.workers()) == self.n_workers:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise SystemExit(
            f"gunicorn ({self.name}) did not start; its log:\n{self.log_path.read_text()[-3000:]}"
        )

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU of every worker this server has had: the live ones, and those it has
        reaped (recycled or killed), which /proc counts in the master's cutime/cstime.
        Not the master's own (its heartbeat loop): the workers' basis."""
        return cpu_seconds(self.workers()) + reaped_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def config_with(log_dir: Path, name: str, **settings: object) -> list[str]:
    """gunicorn arguments for the project's gunicorn.conf.py with ``settings`` changed,
    for settings the command line cannot turn off (``preload_app=False``): a config
    file that runs the project's, then sets them."""
    path = log_dir / f"gunicorn-{name}.conf.py"
    lines = [
        "import runpy",
        f"globals().update(runpy.run_path({str(ROOT / 'gunicorn.conf.py')!r}))",
        *(f"{key} = {value!r}" for key, value in settings.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return ["--config", str(path)]


def memory_kb(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private pages) of ``pid`` in kB, from smaps_rollup: USS is
    what the process alone costs; pages shared with the master after fork are not."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids``, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone meanwhile (a recycled worker: its master counts it)
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is field 3 (state)
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return ticks / CLK_TCK


def reaped_cpu_seconds(pid: int) -> float:
    """cutime + cstime of ``pid``: the CPU of its children it has waited for."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / CLK_TCK  # fields 16 and 17


def postgres_backends(database: str) -> list[int]:
    """The server processes of the connections to ``database`` (same machine only)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [pid for (pid,) in rows if Path(f"/proc/{pid}/stat").exists()]


# -- load generators ---------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: dict[int, float]  # percentile → ms
    bad: int  # non-2xx responses and socket errors

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(
    url: str, headers: dict[str, str], seconds: int, connections: int, script: list[str] = ()
) -> Load:
    """wrk on ``url``; ``script``: a Lua script and its arguments (``-s``, after ``--``)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    tail = ["--", *script[1:]] if script else []
    if script:
        command += ["-s", script[0]]
    out = subprocess.run([*command, url, *tail], capture_output=True, text=True, check=True).stdout
    requests, secs = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out).group(1, 2)
    unit = re.search(r"\d+ requests in [\d.]+(us|ms|s|m)", out).group(1)
    latencies = {
        int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M)
    }
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        # gunicorn closes connections (sync workers after every response, others when
        # idle or stopping); wrk counts none of those as errors, so any here is a real
        # failure.
        bad += sum(int(n) for n in errors.groups())
    return Load(int(requests), float(secs) * _UNITS[unit] / 1000, latencies, bad)


def _py_client(job: tuple[str, int, str, dict[str, str], float]) -> tuple[list[float], int]:
    host, port, path, headers, deadline = job
    latencies: list[float] = []
    bad = 0
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while time.time() < deadline:
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = 200 <= response.status < 400
        except OSError:
            conn.close()
            ok = False
        latencies.append((time.perf_counter() - started) * 1000)
        bad += not ok
    conn.close()
    return latencies, bad


def run_python(url: str, headers: dict[str, str], seconds: float, connections: int) -> Load:
    """A load generator of ``connections`` processes, each one request at a time."""
    parsed = urlsplit(url)
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    started = time.time()
    deadline = started + seconds
    job = (parsed.hostname, parsed.port, path, headers, deadline)
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        results = pool.map(_py_client, [job] * connections)
    elapsed = time.time() - started
    latencies = [ms for lat, _ in results for ms in lat]
    bad = sum(b for _, b in results)
    return Load(len(latencies), elapsed, {p: percentile(latencies, p) for p in (50, 90, 99)}, bad)


# -- the benchmark -----------------------------------------------------------------------


@dataclass
class Target:
    key: str
    label: str
    server: Server
    path: str
    headers: dict[str, str]
    db_pids: list[int] | None = None
    script: list[str] | None = None  # wrk only: a Lua script and its arguments


@dataclass
class Sample:
    rps: float
    p50: float
    p99: float
    server_cpu_ms: float  # per request, gunicorn workers
    db_cpu_ms: float  # per request, PostgreSQL backends (nan for the bare app)
    client_cpu_ms: float  # per request, the load generator
    requests: int
    bad: int
    boots: int = 0  # workers started during the measurement (recycling, crashes)


def measure(target: Target, seconds: float, connections: int, use_wrk: bool) -> Sample:
    workers = set(target.server.workers())
    db_pids = target.db_pids or []
    before = target.server.cpu_seconds()
    db_before = cpu_seconds(db_pids)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    url = target.server.base + target.path
    if target.script:
        load = run_wrk(url, target.headers, seconds, connections, target.script)
    else:
        runner = run_wrk if use_wrk else run_python
        load = runner(url, target.headers, seconds, connections)
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = max(load.requests, 1)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    return Sample(
        rps=load.rps,
        p50=load.latencies_ms.get(50, float("nan")),
        p99=load.latencies_ms.get(99, float("nan")),
        server_cpu_ms=(target.server.cpu_seconds() - before) * 1000 / served,
        db_cpu_ms=(cpu_seconds(db_pids) - db_before) * 1000 / served if db_pids else float("nan"),
        client_cpu_ms=client_cpu * 1000 / served,
        requests=load.requests,
        bad=load.bad,
        boots=len(set(target.server.workers()) - workers),
    )


def call(
    port: int, method: str, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, object, http.client.HTTPMessage]:
    """One request to 127.0.0.1:``port``: status, JSON body, headers."""
    headers = {}
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null"), response.headers
    finally:
        conn.close()


def seed(port: int, database_url: str) -> str:
    """A user (through the API) with N_SUBJECTS subjects (through SQL); their token."""
    import psycopg

    password = secrets.token_urlsafe(16)
    user = {"email": "bench@example.com", "username": "bench", "password": password}
    status, body, _ = call(port, "POST", "/api/v1/auth/register", user)
    assert status == 201, (status, body)
    status, tokens, _ = call(
        port, "POST", "/api/v1/auth/login", {"login": "bench", "password": password}
    )
    assert status == 200, (status, tokens)
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO subjects (owner_id, name, description, color, is_archived,
                                  created_at, updated_at)
            SELECT %(owner)s, 'Subject ' || g, 'Notes and documents for subject ' || g,
                   '#3A7BD5', false, now() - g * interval '1 minute',
                   now() - g * interval '1 minute'
            FROM generate_series(1, %(n)s) AS g
            """,
            {"owner": body["id"], "n": N_SUBJECTS},
        )
        conn.execute("VACUUM ANALYZE")
    return tokens["access_token"]


def check_targets(targets: list[Target]) -> None:
    for target in targets:
        token = target.headers.get("Authorization", "").removeprefix("Bearer ") or None
        status, body, headers = call(target.server.port, "GET", target.path, token=token)
        assert status == 200, (target.label, status, body)
        if target.key == "subjects":
            total = json.loads(headers["X-Pagination"])["total"]
            assert len(body) == 20 and total == N_SUBJECTS, (len(body), total)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web-concurrency",
        type=int,
        default=web_concurrency(),
        help="$WEB_CONCURRENCY, gunicorn's workers (default: 2 × cores + 1, as a PaaS sets it)",
    )
    parser.add_argument(
        "--gunicorn",
        default="",
        metavar="ARGS",
        help="gunicorn command-line settings on top of gunicorn.conf.py, e.g. "
        '"--worker-class sync" (default: none, the file as it is)',
    )


def server_settings(args: argparse.Namespace) -> dict:
    return {"workers": args.web_concurrency, "args": shlex.split(args.gunicorn)}


def describe_server(args: argparse.Namespace) -> str:
    extra = f" + {args.gunicorn}" if args.gunicorn else ""
    return f"gunicorn.conf.py{extra}, WEB_CONCURRENCY={args.web_concurrency}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per target")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument("--quick", action="store_true", help="one round of 3 s (≈ 30 s)")
    parser.add_argument(
        "--python-client", action="store_true", help="use the Python load generator, not wrk"
    )
    add_server_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 3, 1
    use_wrk = not args.python_client and shutil.which("wrk") is not None
    if not use_wrk and not args.python_client:
        print(WRK_MISSING, file=sys.stderr)

    rule("bench.http")
    print(f"machine: {machine()}")
    print(
        f"gunicorn: {describe_server(args)}; load: "
        f"{'wrk -t1' if use_wrk else 'Python, processes'}, {args.connections} connections, "
        f"{args.rounds} × {args.duration:g} s per target (medians of rounds)"
    )

    log_dir = Path(tempfile.mkdtemp(prefix="eleva-bench-http-"))
    servers: list[Server] = []
    try:
        with scratch_database(DB_NAME) as database_url:
            env = production_env(database_url, str(log_dir / "media"))
            settings = server_settings(args)
            bare = Server("bare", "bench.bare_app:app", {}, log_dir, **settings)
            servers.append(bare)
            eleva = Server("eleva", "wsgi:app", env, log_dir, **settings)
            servers.append(eleva)
            bare.wait_ready("/")
            eleva.wait_ready("/health")
            token = seed(eleva.port, database_url)
            auth = {"Authorization": f"Bearer {token}"}
            targets = [
                Target("bare", "(a) bare Flask GET /", bare, "/", {}),
                Target("health", "(b) GET /health", eleva, "/health", {}),
                Target("me", "(c) GET /api/v1/users/me", eleva, "/api/v1/users/me", auth),
                Target(
                    "subjects",
                    "(d) GET /api/v1/subjects/ (20 of 1,000)",
                    eleva,
                    "/api/v1/subjects/?page_size=20",
                    auth,
                ),
            ]
            check_targets(targets)
            for target in targets:  # warm up: every worker's pool, caches, code paths
                measure(target, args.warmup, args.connections, use_wrk)
            db_pids = postgres_backends(database_url.rsplit("/", 1)[1])
            for target in targets[1:]:
                target.db_pids = db_pids

            samples: dict[str, list[Sample]] = {t.key: [] for t in targets}
            for round_no in range(args.rounds):
                shift = round_no % len(targets)  # a different order each round
                for target in targets[shift:] + targets[:shift]:
                    samples[target.key].append(
                        measure(target, args.duration, args.connections, use_wrk)
                    )
            report(targets, samples)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def report(targets: list[Target], samples: dict[str, list[Sample]]) -> None:
    def med(key: str, attr: str) -> float:
        return median([getattr(s, attr) for s in samples[key]])

    floor_rps = med("bare", "rps")
    floor_cpu = med("bare", "server_cpu_ms")
    print()
    print(
        f"{'target':<42}{'req/s':>8}{'×(a)':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU ms/req':>11}{'×(a) CPU':>9}{'DB CPU':>8}{'client':>8}{'errors':>7}{'boots':>6}"
    )
    ratios = {}
    for target in targets:
        k = target.key
        rps, cpu = med(k, "rps"), med(k, "server_cpu_ms")
        # CPU-based ratio: the share of the floor's capacity when CPU-bound.
        ratios[k] = (rps / floor_rps, floor_cpu / cpu)
        bad = sum(s.bad for s in samples[k])
        db_cpu = med(k, "db_cpu_ms")
        print(
            f"{target.label:<42}{rps:>8.0f}{ratios[k][0]:>7.2f}{med(k, 'p50'):>8.2f}"
            f"{med(k, 'p99'):>8.2f}{cpu:>11.3f}{ratios[k][1]:>9.2f}"
            f"{'—' if db_cpu != db_cpu else f'{db_cpu:.3f}':>8}"
            f"{med(k, 'client_cpu_ms'):>8.3f}{bad:>7}{sum(s.boots for s in samples[k]):>6}"
        )
    print(
        "\nCPU ms/req: gunicorn workers' utime+stime per request served; ×(a) CPU = "
        "(a)'s CPU/req ÷ the target's (the share of the floor's capacity when the server\n"
        "is CPU-bound). DB CPU: the PostgreSQL backends' CPU per request. client: the load "
        "generator's CPU per request. boots: workers started during the measurements."
    )
    print("\ntargets:")
    for key, label, target in (
        ("me", "/users/me", TARGET_USERS_ME),
        ("subjects", "/subjects/ (20 items)", TARGET_SUBJECTS),
    ):
        by_rps, by_cpu = ratios[key]
        print(
            f"  {label} ≥ {target:.2f}× the bare floor: throughput {by_rps:.2f}× "
            f"({verdict(by_rps >= target)}), CPU per request {by_cpu:.2f}× "
            f"({verdict(by_cpu >= target)}); by round {round_ratios(samples['bare'], samples[key])}"
        )


def round_ratios(floor: list[Sample], target: list[Sample]) -> str:
    """The floor's CPU per request ÷ the target's, round by round (each round measures
    both within seconds of each other): how far the median can be trusted."""
    pairs = zip(floor, target, strict=True)
    return ", ".join(f"{f.server_cpu_ms / t.server_cpu_ms:.2f}" for f, t in pairs)


if __name__ == "__main__":
    raise SystemExit(main())
