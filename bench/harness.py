"""What the benches share: scratch databases, gunicorn started as the Procfile does,
wrk, CPU and memory read from /proc, seeding through the API and bulk SQL, and a
description of the machine and of what else ran on it. Nothing here is imported by the
app; every helper cleans up after itself.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Trust authentication on the local server. Benches only ever create, use and drop
# databases named eleva_bench_*: never the test suite's or anybody else's.
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- databases ---------------------------------------------------------------------------


def dsn(database_url: str) -> str:
    """The psycopg DSN of an SQLAlchemy URL."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def execute(database_url: str, statement: str, params: Any = None) -> list[tuple]:
    """One statement in its own autocommitted connection; the rows it returns."""
    with psycopg.connect(dsn(database_url), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@contextmanager
def scratch_database(name: str, checkout: Path = ROOT) -> Iterator[str]:
    """Create database ``name`` (eleva_bench_*), migrate it with ``checkout``'s own
    ``flask db upgrade`` (the release phase), yield its URL; drop it at the end."""
    if not re.fullmatch(r"eleva_bench_[a-z0-9_]+", name):
        raise ValueError(f"bench databases are named eleva_bench_*, not {name!r}")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url += f"/{name}"
    try:
        env = {**os.environ, "DATABASE_URL": url, "ELEVA_ENV": "development"}
        upgrade = subprocess.run(
            [sys.executable, "-m", "flask", "db", "upgrade"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
        )
        if upgrade.returncode:
            raise SystemExit(f"flask db upgrade failed in {checkout}:\n{upgrade.stderr[-3000:]}")
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def production_env(database_url: str, media_path: Path) -> dict[str, str]:
    """A production deploy's environment with random secrets, rate limits off (they
    would throttle the load) and emails dropped (no SMTP server here). A checkout that
    refuses what it does not need ignores the rest."""
    return {
        "ELEVA_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "STORAGE_BACKEND": "local",
        "LOCAL_STORAGE_PATH": str(media_path),
        "CORS_ORIGINS": "https://app.example.com",
        "FRONTEND_URL": "https://app.example.com",
        "RATELIMIT_ENABLED": "false",
        "MAIL_BACKEND": "dummy",
    }


# -- gunicorn ----------------------------------------------------------------------------


def web_concurrency() -> int:
    """What a PaaS sets $WEB_CONCURRENCY to here, and gunicorn.conf.py's default."""
    return 2 * (os.cpu_count() or 1) + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m gunicorn [args] <app>`` from ``checkout``, as the Procfile runs it: it
    reads that checkout's gunicorn.conf.py, with $PORT and $WEB_CONCURRENCY set. ``args``
    are command-line settings on top of the file (comparisons only)."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        checkout: Path = ROOT,
        app: str = "wsgi:app",
        args: Sequence[str] = (),
        workers: int | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.n_workers = workers or web_concurrency()
        self.log_path = log_dir / f"gunicorn-{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", *args, app],
                cwd=checkout,
                env={
                    **os.environ,
                    **(env or {}),
                    "PORT": str(self.port),
                    "WEB_CONCURRENCY": str(self.n_workers),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, path: str = "/health", timeout: float = 90.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if call(self.port, "GET", path)[0] == 200 and len(self.workers()) == self.n_workers:
                    return self
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise SystemExit(f"gunicorn {self.name} did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def cpu_seconds(self) -> float:
        """The workers' CPU: live ones, and those the master reaped (its cutime and
        cstime). Not the master's own."""
        fields = _stat(self.process.pid)
        reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK if fields else 0.0
        return cpu_seconds(self.workers()) + reaped

    def memory(self) -> list[dict[str, int]]:
        """RSS and USS (pages no other process shares) of each worker, in kB."""
        return [m for pid in self.workers() if (m := memory_kb(pid))]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def floor(log_dir: Path, **kwargs: Any) -> Server:
    """The floor: bench/bare_app.py under this checkout's gunicorn.conf.py."""
    return Server("floor", log_dir, app="bench.bare_app:app", checkout=ROOT, **kwargs)


@contextmanager
def servers() -> Iterator[list[Server]]:
    """A list to put servers in; each is stopped at the end, whatever happens."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; [] when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2 :].split()


def children(pid: int) -> list[int]:
    return sorted(int(p) for p in _pids() if (f := _stat(int(p))) and int(f[1]) == pid)


def _pids() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` (fields 14 and 15), in seconds."""
    return sum(int(f[11]) + int(f[12]) for pid in pids if (f := _stat(pid))) / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return {}
    fields = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines)}
    return {"rss": fields["Rss"], "uss": fields["Private_Clean"] + fields["Private_Dirty"]}


# -- HTTP and seeding --------------------------------------------------------------------


def call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any, http.client.HTTPMessage]:
    """One request on a new connection: status, JSON body (or None), headers."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        return response.status, answer, response.headers
    finally:
        conn.close()


def register(port: int, username: str) -> tuple[int, str, str]:
    """A new account through the API: (user id, access token, password)."""
    password = secrets.token_urlsafe(16)
    account = {"email": f"{username}@example.com", "username": username, "password": password}
    status, user, _ = call(port, "POST", "/api/v1/auth/register", account)
    assert status == 201, (status, user)
    return user["id"], login(port, username, password), password


def login(port: int, username: str, password: str) -> str:
    status, tokens, _ = call(
        port, "POST", "/api/v1/auth/login", {"login": username, "password": password}
    )
    assert status == 200, (status, tokens)
    return tokens["access_token"]


def insert_subjects(database_url: str, owner_id: int, n: int) -> list[int]:
    """``n`` subjects for ``owner_id`` in one statement; their ids."""
    rows = execute(
        database_url,
        "INSERT INTO subjects (owner_id, name, description, color, is_archived, created_at,"
        " updated_at) SELECT %(owner)s, 'Subject ' || g, 'Notes for subject ' || g,"
        " '#3A7BD5', false, now() - g * interval '1 minute', now() - g * interval '1 minute'"
        " FROM generate_series(1, %(n)s) AS g RETURNING id",
        {"owner": owner_id, "n": n},
    )
    return sorted(row[0] for row in rows)


def insert_notes(database_url: str, owner_id: int, subject_id: int, n: int) -> list[int]:
    """``n`` notes in one of ``owner_id``'s subjects in one statement; their ids."""
    rows = execute(
        database_url,
        "INSERT INTO notes (owner_id, subject_id, title, body, excerpt, created_at,"
        " updated_at) SELECT %(owner)s, %(subject)s, 'Note ' || g,"
        " repeat('Some **Markdown** text. ', 40), repeat('Some Markdown text. ', 9),"
        " now() - g * interval '1 minute', now() - g * interval '1 minute'"
        " FROM generate_series(1, %(n)s) AS g RETURNING id",
        {"owner": owner_id, "subject": subject_id, "n": n},
    )
    return sorted(row[0] for row in rows)


def analyze(database_url: str) -> None:
    execute(database_url, "VACUUM ANALYZE")


# -- load --------------------------------------------------------------------------------


@dataclass
class Sample:
    """One wrk run against one server: throughput, latency, errors, worker CPU."""

    requests: int
    seconds: float
    p50: float  # ms
    p99: float  # ms
    non_2xx: int
    socket_errors: int
    cpu_ms: float  # the server's workers, per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    server: Server,
    path: str,
    seconds: float,
    connections: int,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    script_args: Sequence[str] = (),
) -> Sample:
    """``wrk -t1`` on ``server`` (a Lua ``script`` makes the requests if given)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    command.append(server.url(path))
    if script_args:
        command += ["--", *script_args]
    before = server.cpu_seconds()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = server.cpu_seconds() - before
    found = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m))", out)
    if not found:
        raise RuntimeError(f"wrk said:\n{out}")
    requests = int(found.group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Sample(
        requests=requests,
        seconds=_ms(found.group(2)) / 1000,
        p50=_ms(latency["50"]) if "50" in latency else float("nan"),
        p99=_ms(latency["99"]) if "99" in latency else float("nan"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        cpu_ms=cpu * 1000 / max(requests, 1),
    )


def alternate(keys: Sequence[Any], rounds: int, run: Callable[[Any], Any]) -> dict[Any, list]:
    """``run(key)`` for every key, ``rounds`` times, starting one key later each round
    (drift and other people's work then hit every key alike); results by key."""
    results: dict[Any, list] = {key: [] for key in keys}
    for round_no in range(rounds):
        shift = round_no % len(keys)
        for key in [*keys[shift:], *keys[:shift]]:
            results[key].append(run(key))
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0–100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def lua(value: Any) -> str:
    """A Lua literal of ``value`` (dicts, lists, ASCII strings, numbers)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


# -- the machine -------------------------------------------------------------------------


class Machine:
    """Where the figures come from, and how busy the machine was while they were taken:
    all CPUs (/proc/stat) against this bench's own processes (its rusage, servers and
    wrk included once reaped), and other people's test runs."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.load_before = os.getloadavg()
        self.busy_before, self.steal_before = _system_ticks()
        self.ours_before = _our_cpu()
        self.pytests_before = _count("pytest")

    def describe(self) -> str:
        cpu = "unknown CPU"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        ram = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
        pg = execute(PG_ADMIN_DSN, "SHOW server_version")[0][0]
        return (
            f"{cpu}, {os.cpu_count()} cores, {ram:.1f} GiB; Linux {platform.release()}; "
            f"Python {platform.python_version()}; PostgreSQL {pg}; "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )

    def activity(self) -> str:
        """Call once the servers are stopped (their CPU then counts as this bench's)."""
        elapsed = time.monotonic() - self.started
        busy, steal = _system_ticks()
        cores = (busy - self.busy_before) / CLK_TCK / elapsed
        ours = (_our_cpu() - self.ours_before) / elapsed
        stolen = (steal - self.steal_before) / CLK_TCK / elapsed
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        return (
            f"over {elapsed:.0f} s the {os.cpu_count()} cores were busy {cores:.2f} on average: "
            f"this bench {ours:.2f}, everything else {cores - ours:.2f} (PostgreSQL, this "
            f"bench's queries included, and other people's work)"
            + (f", {stolen:.2f} stolen by the hypervisor" if stolen >= 0.05 else "")
            + f"; load average {'/'.join(f'{x:.1f}' for x in self.load_before)} at start, "
            f"{load} at end; pytest processes: {self.pytests_before} at start, "
            f"{_count('pytest')} at end"
        )


def _system_ticks() -> tuple[int, int]:
    """All CPUs' busy ticks (user, nice, system, irq, softirq) and stolen ticks."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6], fields[7]


def _our_cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _count(comm: str) -> int:
    found = 0
    for entry in _pids():
        with suppress(OSError):
            found += Path(f"/proc/{entry}/comm").read_text().strip() == comm
    return found


def rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows under a header, columns right-aligned except the first."""
    cells = [list(header)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        first, *rest = row
        print(
            f"{first:<{widths[0]}}  "
            + "  ".join(f"{v:>{w}}" for v, w in zip(rest, widths[1:], strict=True))
        )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "—"
        return (
            f"{value:.0f}"
            if abs(value) >= 100
            else f"{value:.3g}"
            if abs(value) < 1
            else f"{value:.2f}"
        )
    return str(value)
