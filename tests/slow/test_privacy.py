"""Privacy over real HTTP: gunicorn as the Procfile runs it, ``flask jobs worker`` as a
process of its own, Redis, S3 on a moto server, and the SMTP server the tests start.

- An export asked for over HTTP is built by the worker, announced by email, and
  downloaded by a client from its presigned URL.
- The worker's work horse SIGKILLed while it uploads the archive (a multipart upload
  left open): the retry makes the export ready, the open upload is aborted, and one
  archive is stored.
- The whole worker SIGKILLed (a deploy that did not wait): a worker started again finds
  the abandoned job and retries it, with the same outcome.
- An erasure asked for over HTTP: the email through the worker, the link cancels it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import PASSWORD
from tests.slow.support import ROOT, Api, clean_environ, libpq_dsn
from tests.test_filetypes import PDF, PNG

pytestmark = pytest.mark.slow

ME = "/api/v1/users/me"
MB = 1024 * 1024


class Bucket:
    """The test's own bucket on the moto server (whose state outlives a test: every
    test gets a bucket of its own)."""

    def __init__(self, s3, name: str) -> None:
        self.s3, self.name = s3, name

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def open_uploads(self, prefix: str) -> list[str]:
        listed = self.s3.list_multipart_uploads(Bucket=self.name, Prefix=prefix)
        return [u["Key"] for u in listed.get("Uploads", [])]


@pytest.fixture
def moto_s3(monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    bucket = Bucket(s3, f"eleva-slow-{secrets.token_hex(4)}")
    s3.create_bucket(Bucket=bucket.name)
    try:
        yield endpoint, bucket
    finally:
        server.stop()


class Worker:
    """``flask jobs worker`` in a process of its own (the Procfile's ``worker:``)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "jobs", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def horse(self, timeout: float = 30) -> int:
        """The pid of the work horse running a job now: of the worker's children (its
        scheduler is one too), the one that leads a process group of its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in map(int, children.read_text().split() if children.exists() else []):
                with contextlib.suppress(ProcessLookupError):
                    if os.getpgid(pid) == pid:
                        return pid
            time.sleep(0.005)
        raise AssertionError("no work horse appeared")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def stack(new_database, gunicorn, redis_url, smtp_server, moto_s3, tmp_path):
    """(api, worker, s3, inbox): the server, a worker (not started), S3 and the inbox."""
    host, port, inbox = smtp_server
    endpoint, bucket = moto_s3
    database_url = libpq_dsn(new_database())
    settings = {
        "REDIS_URL": redis_url,
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": bucket.name,
        "S3_REGION": "us-east-1",
        "S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": host,
        "MAIL_PORT": str(port),
        "JOB_RETRIES": "2",
        "JOB_RETRY_INTERVALS": "1",
    }
    server = gunicorn(database_url=database_url, **settings)
    worker_env = clean_environ(
        ELEVA_ENV="testing",
        TEST_DATABASE_URL=database_url,
        BCRYPT_ROUNDS="4",
        FLASK_APP="wsgi",
        LOG_LEVEL="INFO",
        **settings,
    )
    workers: list[Worker] = []

    def new_worker() -> Worker:
        worker = Worker(worker_env, tmp_path / "worker.log")
        workers.append(worker)
        return worker

    yield Api(server.base_url), new_worker, bucket, inbox
    for worker in workers:
        worker.stop()


def headers(api: Api, prefix: str) -> tuple[dict[str, str], str]:
    account = api.account(prefix)
    return account.headers, account.username


def upload(api: Api, auth: dict[str, str], subject_id: int, data: bytes, name: str) -> dict:
    response = api.post(
        f"/api/v1/subjects/{subject_id}/documents",
        headers=auth,
        files={"file": (name, io.BytesIO(data))},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_status(api: Api, auth: dict[str, str], status: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        export = api.get(f"{ME}/export", headers=auth).json()
        if export["status"] == status:
            return export
        time.sleep(0.2)
    raise AssertionError(f"the export is {export['status']}, not {status}, after {timeout} s")


def wait_for_open_upload(bucket: Bucket, prefix: str, timeout: float = 60) -> str:
    """The key of the archive's multipart upload, once it is open (parts going up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        uploads = bucket.open_uploads(prefix)
        if uploads:
            return uploads[0]
        time.sleep(0.005)
    raise AssertionError("the archive's multipart upload was never seen open")


def wait_for_email(inbox, subject: str, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in inbox.messages if subject in m["Subject"]]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no email about {subject!r}")


def downloaded(api: Api, auth: dict[str, str]) -> zipfile.ZipFile:
    link = api.get(f"{ME}/export/download", headers=auth)
    assert link.status_code == 200, link.text
    served = requests.get(link.json()["url"], timeout=60)
    assert served.status_code == 200
    assert served.headers["Content-Disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(served.content))


def big_documents(api: Api, auth: dict[str, str], count: int = 3) -> list[bytes]:
    subject = api.post("/api/v1/subjects/", json={"name": "Scans"}, headers=auth).json()["id"]
    files = [PNG + os.urandom(20 * MB) for _ in range(count)]
    for i, data in enumerate(files):
        upload(api, auth, subject, data, f"scan-{i}.png")
    return files


def user_id(api: Api, auth: dict[str, str]) -> int:
    return api.get(ME, headers=auth).json()["id"]


def test_an_export_over_http_is_built_by_the_worker_emailed_and_downloaded(stack):
    api, new_worker, _bucket, inbox = stack
    worker = new_worker()
    worker.start()
    auth, username = headers(api, "ada")
    subject = api.post("/api/v1/subjects/", json={"name": "Algebra"}, headers=auth).json()["id"]
    document = upload(api, auth, subject, PDF, "slides.pdf")
    requested = api.post(f"{ME}/export", headers=auth)
    assert requested.status_code == 202 and requested.json()["status"] == "pending"
    export = wait_for_status(api, auth, "ready")
    archive = downloaded(api, auth)
    index = json.loads(archive.read("eleva-export.json"))
    (exported,) = index["subjects"][0]["documents"]
    assert exported["id"] == document["id"] and archive.read(exported["path"]) == PDF
    assert export["size"] > 0
    ready = wait_for_email(inbox, "export is ready")
    assert [m["To"] for m in ready] == [f"{username}@example.com"]
    again = api.post(f"{ME}/export", headers=auth)
    assert again.status_code == 429 and int(again.headers["Retry-After"]) > 86000


def test_a_work_horse_killed_during_the_upload_is_retried_and_its_upload_aborted(stack):
    api, new_worker, bucket, inbox = stack
    worker = new_worker()
    worker.start()
    auth, _ = headers(api, "grace")
    files = big_documents(api, auth)
    prefix = f"exports/{user_id(api, auth)}/"
    assert api.post(f"{ME}/export", headers=auth).status_code == 202
    killed = wait_for_open_upload(bucket, prefix)
    os.kill(worker.horse(), signal.SIGKILL)
    wait_for_status(api, auth, "ready")
    (key,) = bucket.keys(prefix)
    assert key != killed  # made by the retry; the killed attempt's upload was aborted
    assert bucket.open_uploads(prefix) == []
    archive = downloaded(api, auth)
    index = json.loads(archive.read("eleva-export.json"))
    stored = [archive.read(d["path"]) for d in index["subjects"][0]["documents"]]
    assert stored == files
    assert not [m for m in inbox.messages if "could not be made" in m["Subject"]]


def test_a_whole_worker_killed_mid_export_is_finished_by_the_next_worker(stack):
    """A deploy that killed the worker outright: the job stays 'started' until its
    heartbeat lapses (RQ: about 90 s); a worker started after that retries it."""
    api, new_worker, bucket, _inbox = stack
    first = new_worker()
    first.start()
    auth, _ = headers(api, "linus")
    files = big_documents(api, auth, count=2)
    prefix = f"exports/{user_id(api, auth)}/"
    assert api.post(f"{ME}/export", headers=auth).status_code == 202
    killed = wait_for_open_upload(bucket, prefix)
    horse = first.horse()
    first.kill()
    os.kill(horse, signal.SIGKILL)  # its own process group: the worker's death spares it
    assert api.get(f"{ME}/export", headers=auth).json()["status"] == "pending"
    time.sleep(95)  # the abandoned job's heartbeat lapses
    new_worker().start()
    wait_for_status(api, auth, "ready", timeout=120)
    (key,) = bucket.keys(prefix)
    assert key != killed
    assert bucket.open_uploads(prefix) == []
    archive = downloaded(api, auth)
    index = json.loads(archive.read("eleva-export.json"))
    assert [archive.read(d["path"]) for d in index["subjects"][0]["documents"]] == files


def test_an_erasure_over_http_is_emailed_by_the_worker_and_its_link_cancels_it(stack):
    api, new_worker, _bucket, inbox = stack
    new_worker().start()
    auth, username = headers(api, "zoe")
    response = api.delete(ME, json={"password": PASSWORD, "erase": True}, headers=auth)
    assert response.status_code == 202, response.text
    assert api.get(ME, headers=auth).status_code == 401
    (message,) = wait_for_email(inbox, "will be erased")
    token = re.search(
        r"/cancel-erasure\?token=([A-Za-z0-9_-]+)", message.get_body(("plain",)).get_content()
    ).group(1)
    assert api.post("/api/v1/auth/erasure/cancel", json={"token": token}).status_code == 204
    assert api.login(username).status_code == 200
