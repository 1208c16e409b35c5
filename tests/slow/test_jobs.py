"""The job worker under abuse (issue 32), over real HTTP: gunicorn as the Procfile runs it,
``flask jobs worker`` as a separate process (RQ forks a work horse per job), Redis, and a
real SMTP server.

- hostile files end ``failed`` within TEXT_EXTRACTION_SECONDS + 5 s, and the worker's
  processes grow by at most 200 MB (read from /proc while each job runs);
- one user's uploads do not hold back anyone's email: emails have their own queue,
  worked first, and a user has at most TEXT_EXTRACTION_QUEUED texts in the queue;
- a password reset while Redis is down is made (204), and its "password changed" email
  goes out once a worker runs again (the outbox).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import PASSWORD, TEST_REDIS_URL, SmtpInbox
from tests.slow.support import ROOT, Api, Server, clean_environ, free_port, libpq_dsn
from tests.test_extraction import HOSTILE

pytestmark = pytest.mark.slow

MB = 1024 * 1024
EXTRACTION_SECONDS = 3


# -- a worker process, and what its processes use ---------------------------------------------


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                # pid (comm) state ppid …: comm may hold spaces, so split after it.
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


class MemoryWatch:
    """The peak resident size of a worker and of every work horse it forks, sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline_kb = _status_kb(pid, "VmRSS") or 0
        self.peak_kb = self.baseline_kb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in (self.pid, *_children(self.pid)):
                self.peak_kb = max(self.peak_kb, _status_kb(pid, "VmHWM") or 0)
            time.sleep(0.02)

    def growth_mb(self) -> float:
        return (self.peak_kb - self.baseline_kb) / 1024

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_worker(server: Server, log_dir: Path, **env: str) -> subprocess.Popen:
    """``flask jobs worker`` on the server's database, storage and queue."""
    environ = clean_environ(
        FLASK_APP="wsgi",
        ELEVA_ENV="testing",
        TEST_DATABASE_URL=libpq_dsn(server.database or ""),
        LOCAL_STORAGE_PATH=str(server.media),
        BCRYPT_ROUNDS="4",
        RATELIMIT_ENABLED="false",
        **env,
    )
    log = (log_dir / f"worker-{time.monotonic_ns()}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "jobs", "worker"],
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_idle(pid: int, seconds: float = 2) -> None:
    """Until the worker has started: its resident size no longer changes."""
    deadline = time.monotonic() + 60
    last = -1
    while time.monotonic() < deadline:
        rss = _status_kb(pid, "VmRSS") or 0
        if rss == last:
            return
        last = rss
        time.sleep(seconds)
    raise AssertionError("the worker never settled")


@pytest.fixture
def queue_redis() -> Iterator[str]:
    conn = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        conn.ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {TEST_REDIS_URL}")
    conn.flushdb()
    yield TEST_REDIS_URL
    conn.flushdb()


class Stack:
    """gunicorn and ``flask jobs worker`` processes sharing a fresh database, the media
    folder, Redis and the SMTP server."""

    def __init__(self, server: Server, env: dict[str, str], inbox: SmtpInbox, log_dir: Path):
        self.server, self.env, self.inbox, self.log_dir = server, env, inbox, log_dir
        self.workers: list[subprocess.Popen] = []

    def start_worker(self) -> subprocess.Popen:
        worker = start_worker(self.server, self.log_dir, **self.env)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(20)
            if worker.poll() is None:
                worker.kill()


@pytest.fixture
def stack(new_database, gunicorn, queue_redis, smtp_server, tmp_path):
    """``stack(redis_url=…, **env)`` → a Stack; the web uses ``redis_url`` (default: the
    test Redis), workers the test Redis."""
    host, port, inbox = smtp_server
    made: list[Stack] = []

    def start(*, redis_url: str | None = None, **env: str) -> Stack:
        database = new_database()
        env = {"MAIL_BACKEND": "smtp", "MAIL_SERVER": host, "MAIL_PORT": str(port), **env}
        server = gunicorn(
            database_url=libpq_dsn(database), workers=2, REDIS_URL=redis_url or queue_redis, **env
        )
        server.database = database
        made.append(Stack(server, {"REDIS_URL": queue_redis, **env}, inbox, tmp_path))
        return made[-1]

    yield start
    for each in made:
        each.stop()


def _upload(api: Api, account, subject_id: int, data: bytes, name: str) -> dict:
    response = api.post(
        f"/api/v1/subjects/{subject_id}/documents",
        files={"file": (name, data)},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def _subject(api: Api, account) -> int:
    response = api.post("/api/v1/subjects/", json={"name": "Files"}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _wait_for(check: Callable[[], bool], timeout: float, step: float = 0.1) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


def _text_status(api: Api, account, document_id: int) -> str:
    response = api.get(f"/api/v1/documents/{document_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["text_status"]


# -- item 5: hostile files, bounded in time and memory ----------------------------------------


def test_hostile_files_end_failed_in_time_and_memory(stack):
    running = stack(TEXT_EXTRACTION_SECONDS=str(EXTRACTION_SECONDS))
    server, worker = running.server, running.start_worker()
    api = Api(server.base_url)
    account = api.account("hostile")
    subject_id = _subject(api, account)
    wait_idle(worker.pid)
    outcomes = {}
    for name, (_content_type, build) in HOSTILE.items():
        data = build()
        watch = MemoryWatch(worker.pid)
        started = time.monotonic()
        document = _upload(
            api, account, subject_id, data, name + (".pdf" if name.startswith("pdf") else ".docx")
        )
        with contextlib.suppress(AssertionError):
            _wait_for(
                lambda d=document: _text_status(api, account, d["id"]) != "pending",
                timeout=EXTRACTION_SECONDS + 30,
            )
        elapsed = time.monotonic() - started
        watch.stop()
        outcomes[name] = (
            _text_status(api, account, document["id"]),
            round(elapsed, 1),
            round(watch.growth_mb()),
        )
    print(f"\nhostile files (status, seconds, peak growth MB): {outcomes}")
    for name, (status, seconds, growth) in outcomes.items():
        assert status == "failed", (name, outcomes)
        assert seconds <= EXTRACTION_SECONDS + 5, (name, outcomes)
        assert growth <= 200, (name, outcomes)
    assert worker.poll() is None  # the worker itself is still there


# -- item 4: emails first, and a bounded queue per user --------------------------------------


def test_one_users_uploads_do_not_hold_back_anyones_email(stack, queue_redis):
    running = stack(TEXT_EXTRACTION_SECONDS="2", TEXT_EXTRACTION_QUEUED="2", JOB_RETRIES="0")
    server, inbox = running.server, running.inbox
    running.start_worker()
    api = Api(server.base_url)
    uploader, other = api.account("uploader"), api.account("other")
    subject_id = _subject(api, uploader)
    _wait_for(lambda: len(inbox.messages) >= 2, timeout=30)  # both verification emails
    # Files that each keep the worker busy until the extraction's deadline.
    slow = HOSTILE["docx-empty"][1]()
    documents = [_upload(api, uploader, subject_id, slow, f"slow{n}.docx") for n in range(8)]
    queued = redis.Redis.from_url(queue_redis).llen("rq:queue:eleva")
    assert queued <= 2, queued
    sent = len(inbox.messages)
    started = time.monotonic()
    assert api.post("/api/v1/auth/password/forgot", json={"email": other.email}).status_code == 202
    waited = _wait_for(lambda: len(inbox.messages) > sent, timeout=30)
    (reset,) = inbox.messages[sent:]
    assert reset["To"] == other.email and "Reset" in reset["Subject"]
    # At most the extraction under way (2 s) before it, not the eight queued ones.
    assert waited <= 2 + 3, waited
    # And the uploader's files all get their turn.
    _wait_for(
        lambda: all(_text_status(api, uploader, d["id"]) != "pending" for d in documents),
        timeout=8 * 4 + 10,
        step=0.5,
    )
    print(f"\nreset email after {waited:.1f} s, in {time.monotonic() - started:.1f} s all done")


# -- item 8: the "password changed" email survives Redis being down at the reset --------------


def test_a_reset_while_redis_is_down_is_made_and_its_email_follows(stack):
    running = stack(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # the web's Redis: down
    server, inbox = running.server, running.inbox
    api = Api(server.base_url)
    account = api.account("resetter")  # registered while the queue is down: still 201
    token = _issue_reset_token(server.database or "", account.username)
    response = api.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "a new passphrase"}
    )
    assert response.status_code == 204, response.text  # not a 503 after the change
    assert api.login(account.username, "a new passphrase").status_code == 200
    assert api.login(account.username, PASSWORD).status_code == 401
    with psycopg.connect(libpq_dsn(server.database or ""), autocommit=True) as conn:
        waiting = conn.execute("SELECT count(*) FROM job_outbox").fetchone()
        # As if the sweep's half minute had passed.
        conn.execute("UPDATE job_outbox SET created_at = created_at - interval '1 minute'")
    assert waiting == (2,)  # the registration's verification email and the notice
    assert inbox.messages == []
    # Redis is back (for the worker): it sweeps the outbox as it starts, and sends both.
    # Redis is back (for the worker): it sweeps the outbox as it starts, and sends the
    # notice (not the verification: the reset proved the address meanwhile).
    running.start_worker()
    _wait_for(lambda: inbox.messages != [], timeout=30)
    notices = [m for m in inbox.messages if "password was changed" in m["Subject"]]
    assert [m["To"] for m in notices] == [account.email]


def _issue_reset_token(database: str, username: str) -> str:
    """A reset token, made as the reset email's job makes it (forgot needs the queue)."""
    environ = clean_environ(
        FLASK_APP="wsgi", ELEVA_ENV="testing", TEST_DATABASE_URL=libpq_dsn(database)
    )
    script = (
        "from eleva import create_app\n"
        "from eleva.services import auth, emails\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        f"    user = auth.find_by_login({username!r})\n"
        "    print(emails.new_link_token(user.id, emails.RESET, user.email))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]
