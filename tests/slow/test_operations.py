"""Operations over real HTTP: gunicorn as the Procfile runs it (production settings,
JSON logs), the job worker on Redis, a real SMTP server.

- A run of requests that carry passwords, tokens and an email (register, login, refresh,
  forgot and reset, verify, a direct upload and a download through local storage's
  signed URLs): no secret is anywhere in the server's or the worker's whole log, in
  JSON mode and in text mode; every JSON line parses and the access lines carry the
  contract's keys; the worker writes one line per job.
- /metrics: every worker's counts in every scrape, a dead worker's counts kept and its
  pool gauge dropped, the worker's job counts through Redis, and ``promtool check
  metrics`` (Debian's prometheus package; .ci/run installs it) on a real scrape.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.slow.support import ROOT, Api, clean_environ, libpq_dsn

pytestmark = pytest.mark.slow

METRICS_TOKEN = "slow-metrics-token-" + uuid.uuid4().hex
LINK = re.compile(r"https://app\.example\.com/([a-z-]+)\?token=([A-Za-z0-9_-]+)")


def _env(smtp_server, redis_url: str) -> dict[str, str]:
    host, port, _inbox = smtp_server
    return {
        "REDIS_URL": redis_url,
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": host,
        "MAIL_PORT": str(port),
        "METRICS_TOKEN": METRICS_TOKEN,
        "JOB_RETRY_INTERVALS": "1",
    }


def _start_worker(database_url: str, log_path: Path, **env: str) -> subprocess.Popen:
    """The Procfile's worker: process, in production settings like the server's."""
    worker_env = clean_environ(
        ELEVA_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY="slow-" + "s" * 40,
        JWT_SECRET_KEY="slow-" + "j" * 40,
        STORAGE_BACKEND="local",
        CORS_ORIGINS="https://app.example.com",
        FRONTEND_URL="https://app.example.com",
        RATELIMIT_ENABLED="false",
        BCRYPT_ROUNDS="4",
        **env,
    )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "jobs", "worker"],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_email(inbox, to: str, page: str, timeout: float = 20) -> str:
    """The token of the newest link to ``page`` in an email to ``to``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in reversed(inbox.messages):
            if message["To"] == to:
                text = message.get_body(("plain",)).get_content()
                for found_page, token in LINK.findall(text):
                    if found_page == page:
                        return token
        time.sleep(0.1)
    raise AssertionError(f"no {page} email to {to} within {timeout} s")


def _scrape(api: Api) -> tuple[str, dict[tuple[str, frozenset], float]]:
    response = api.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def _a_run_full_of_secrets(api: Api, inbox) -> list[str]:
    """Requests that carry every kind of secret the API handles; the secrets."""
    email = f"ops-{uuid.uuid4().hex[:12]}@mail.test"
    username = f"ops_{uuid.uuid4().hex[:8]}"
    password = "first passphrase " + uuid.uuid4().hex
    new_password = "second passphrase " + uuid.uuid4().hex
    secrets = [email, email.split("@")[0], password, new_password]

    body = {"username": username, "email": email, "password": password}
    assert api.post("/api/v1/auth/register", json=body).status_code == 201
    verify_token = _wait_for_email(inbox, email, "verify-email")
    login = api.post("/api/v1/auth/login", json={"login": email, "password": password})
    assert login.status_code == 200, login.text
    pair = login.json()
    secrets += [verify_token, pair["access_token"], pair["refresh_token"]]
    refreshed = api.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {pair['refresh_token']}"}
    )
    assert refreshed.status_code == 200, refreshed.text
    secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    me = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert api.get("/api/v1/users/me", headers=me).status_code == 200
    assert api.post("/api/v1/auth/email/verify", json={"token": verify_token}).status_code == 204

    assert api.post("/api/v1/auth/password/forgot", json={"email": email}).status_code == 202
    reset_token = _wait_for_email(inbox, email, "reset-password")
    secrets.append(reset_token)
    reset = {"token": reset_token, "new_password": new_password}
    assert api.post("/api/v1/auth/password/reset", json=reset).status_code == 204
    login = api.post("/api/v1/auth/login", json={"login": username, "password": new_password})
    assert login.status_code == 200, login.text
    secrets += [login.json()["access_token"], login.json()["refresh_token"]]
    me = {"Authorization": f"Bearer {login.json()['access_token']}"}

    # Local storage's signed URLs: the upload token and the download token in the path.
    subject = api.post("/api/v1/subjects/", json={"name": "Chemistry"}, headers=me).json()
    data = b"Titration of a weak acid with phenolphthalein\n"
    started = api.post(
        f"/api/v1/subjects/{subject['id']}/documents/uploads",
        json={"filename": "lab.txt", "size": len(data)},
        headers=me,
    )
    assert started.status_code == 201, started.text
    upload = started.json()["upload"]
    upload_token = upload["url"].rstrip("/").rsplit("/", 1)[1]
    path = urlsplit(upload["url"]).path  # relative in production without PUBLIC_BASE_URL
    sent = api.post(path, data=upload["fields"], files={"file": ("lab.txt", data)})
    assert sent.status_code == 204, sent.text
    document_id = started.json()["document"]["id"]
    assert api.post(f"/api/v1/documents/{document_id}/complete", headers=me).status_code == 200
    download = api.get(f"/api/v1/documents/{document_id}/download", headers=me).json()
    download_token = download["url"].rstrip("/").rsplit("/", 1)[1]
    file_path = urlsplit(download["url"]).path
    assert api.get(file_path).content == data
    # A mangled copy (a slash within the token): no rule matches it, yet it carries the token.
    mangled = file_path[:-8] + "/" + file_path[-8:]
    assert api.get(mangled).status_code == 404
    assert api.get(f"{file_path}?download={download_token}").status_code == 200
    secrets += [upload_token, download_token]
    return secrets


def _assert_no_secret(logs: dict[str, str], secrets: list[str]) -> None:
    for name, text in logs.items():
        assert text.strip(), f"the {name} log is empty: the test would prove nothing"
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:12]}…) is in the {name} log"


def test_json_logs_carry_no_secret_and_metrics_cover_every_process(
    new_database, gunicorn, smtp_server, redis_url, tmp_path
):
    _host, _port, inbox = smtp_server
    database_url = libpq_dsn(new_database())
    env = {**_env(smtp_server, redis_url), "LOG_FORMAT": "json"}  # production's default
    server = gunicorn(database_url=database_url, environment="production", workers=2, **env)
    worker_log = tmp_path / "worker.log"
    worker = _start_worker(database_url, worker_log, **{**env, "LOG_FORMAT": ""})
    api = Api(server.base_url)
    try:
        secrets = _a_run_full_of_secrets(api, inbox)

        # Metrics: whichever worker answers, the scrape counts every worker's requests.
        _, before = _scrape(api)
        for _ in range(30):
            assert api.get("/health").status_code == 200
        text_1, first = _scrape(api)
        _, second = _scrape(api)
        health = (
            "eleva_http_requests_total",
            frozenset({"method": "GET", "route": "/health", "status": "200"}.items()),
        )
        assert first[health] - before[health] == 30
        assert second[health] == first[health]
        send_reset = (
            "eleva_jobs_total",
            frozenset(
                {"job": "eleva.services.emails.send_password_reset", "outcome": "succeeded"}.items()
            ),
        )
        assert first[send_reset] >= 1  # counted by the job worker, in Redis
        assert ("eleva_job_queue_depth", frozenset({"queue": "eleva"}.items())) in first
        promtool = shutil.which("promtool")
        if promtool is None and not os.environ.get("CI"):
            pytest.skip("promtool (Debian's prometheus package) is not installed")
        checked = subprocess.run(
            [promtool or "promtool", "check", "metrics"],
            input=text_1,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

        # A dead worker: its counts stay, its pool connections leave the sum.
        me = {"Authorization": f"Bearer {api.account('pool').access_token}"}
        for _ in range(20):  # both workers hold a pooled connection
            assert api.get("/api/v1/users/me", headers=me).status_code == 200
        _, alive = _scrape(api)
        open_before = alive[("eleva_db_pool_connections_open", frozenset())]
        assert open_before >= 2
        children = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        os.kill(int(children[0]), signal.SIGKILL)
        time.sleep(2)  # gunicorn notices, marks it dead, boots another
        _, after = _scrape(api)
        me_route = (
            "eleva_http_requests_total",
            frozenset({"method": "GET", "route": "/api/v1/users/me", "status": "200"}.items()),
        )
        assert after[me_route] == alive[me_route]
        assert after[("eleva_db_pool_connections_open", frozenset())] < open_before
    finally:
        _stop(worker)
        server.stop()

    server_log, worker_text = server.log(), worker_log.read_text()
    _assert_no_secret({"server": server_log, "worker": worker_text}, secrets)
    entries = [json.loads(line) for line in server_log.splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert access and all(
        {
            "ts",
            "level",
            "logger",
            "message",
            "request_id",
            "method",
            "route",
            "status",
            "duration_ms",
        }
        <= set(e)
        for e in access
    )
    me_lines = [e for e in access if e["route"] == "/api/v1/users/me"]
    assert me_lines and all(isinstance(e["user_id"], int) for e in me_lines)
    assert any(e["route"] == "/api/v1/documents/files/<token>" for e in access)
    job_lines = [json.loads(line) for line in worker_text.splitlines() if line.strip()]
    sent = [e for e in job_lines if e.get("job") == "eleva.services.emails.send_password_reset"]
    assert sent and sent[0]["outcome"] == "succeeded" and sent[0]["attempt"] == 1
    assert {"job_id", "duration_ms"} <= set(sent[0])


def test_the_text_access_log_names_routes_not_tokens(
    new_database, gunicorn, smtp_server, redis_url, tmp_path
):
    _host, _port, inbox = smtp_server
    database_url = libpq_dsn(new_database())
    env = {**_env(smtp_server, redis_url), "LOG_FORMAT": "text"}
    server = gunicorn(database_url=database_url, environment="production", workers=2, **env)
    worker_log = tmp_path / "worker.log"
    worker = _start_worker(database_url, worker_log, **env)
    try:
        secrets = _a_run_full_of_secrets(Api(server.base_url), inbox)
    finally:
        _stop(worker)
        server.stop()
    server_log = server.log()
    _assert_no_secret({"server": server_log, "worker": worker_log.read_text()}, secrets)
    assert '"GET /api/v1/documents/files/<token> HTTP/1.1" 200' in server_log
    assert '"POST /api/v1/documents/uploads/<token> HTTP/1.1" 204' in server_log
