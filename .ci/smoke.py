"""Run the Procfile as a PaaS would, against PostgreSQL, and talk to it over HTTP.

release: `flask db upgrade` on a fresh database; web: the Procfile's gunicorn command on
a free port with two workers, in the production configuration; worker: the Procfile's job
worker on the local Redis (database 12, emptied first). Then: /health/ready, a
register → login → GET /users/me round trip, a text document whose text the worker
extracts and search then finds, /metrics with every worker's counts and the worker's
jobs passing `promtool check metrics` (Debian's prometheus, installed by .ci/run), JSON
log lines, and a clean exit on SIGTERM of both processes.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "eleva_ci_smoke"
REDIS_URL = "redis://127.0.0.1:6379/12"
METRICS_TOKEN = "smoke-metrics-token"  # noqa: S105 (a test value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    method: str, url: str, body: dict | None = None, token: str | None = None
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def upload(url: str, token: str, filename: str, data: bytes) -> tuple[int, dict]:
    boundary = "eleva-smoke-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def raw(port: int, head: bytes) -> tuple[int, bytes, dict[str, str]]:
    """Send ``head`` and the end of the headers as they are; status, body, headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}


def _all_json(text: str) -> bool:
    try:
        return all(isinstance(json.loads(line), dict) for line in text.splitlines() if line)
    except ValueError:
        return False


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def main() -> int:
    subprocess.run(
        [
            "psql",
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "-qc",
            f"DROP DATABASE IF EXISTS {DB}",
            "-c",
            f"CREATE DATABASE {DB}",
        ],
        check=True,
    )
    port = free_port()
    media = tempfile.mkdtemp(prefix="eleva-smoke-")
    env = {
        **os.environ,
        "ELEVA_ENV": "production",
        "SECRET_KEY": "smoke-" + "s" * 40,
        "JWT_SECRET_KEY": "smoke-" + "j" * 40,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
        "REDIS_URL": REDIS_URL,
        "STORAGE_BACKEND": "local",  # production insists on being told
        "LOCAL_STORAGE_PATH": media,
        "CORS_ORIGINS": "https://app.example.com",
        "FRONTEND_URL": "https://app.example.com",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "API_DOCS_ENABLED": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    commands = procfile()
    print("release:", commands["release"].strip())
    subprocess.run(shlex.split(commands["release"]), cwd=ROOT, env=env, check=True)

    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)
    print("worker:", commands["worker"].strip())
    logs = Path(tempfile.mkdtemp(prefix="eleva-smoke-logs-"))
    worker = subprocess.Popen(
        shlex.split(commands["worker"]),
        cwd=ROOT,
        env=env,
        stdout=(logs / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    print("web:", commands["web"].strip(), f"(PORT={port}, WEB_CONCURRENCY=2)")
    web = subprocess.Popen(
        shlex.split(commands["web"]),
        cwd=ROOT,
        env=env,
        stdout=(logs / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if call("GET", f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not answer /health within 20 s")

        checks = []
        status, body = call("GET", f"{base}/health/ready")
        checks.append(("GET /health/ready → 200", status == 200 and body == {"status": "ok"}))
        user = {
            "email": "smoke@example.com",
            "username": "smoke",
            "password": "a smoke test passphrase",
        }
        status, body = call("POST", f"{base}/api/v1/auth/register", user)
        checks.append(("POST /auth/register → 201", status == 201 and body["username"] == "smoke"))
        status, tokens = call(
            "POST",
            f"{base}/api/v1/auth/login",
            {"login": "SMOKE@example.com", "password": user["password"]},
        )
        checks.append(
            ("POST /auth/login → 200", status == 200 and tokens.get("token_type") == "Bearer")
        )
        status, me = call("GET", f"{base}/api/v1/users/me", token=tokens.get("access_token"))
        checks.append(
            ("GET /users/me → 200", status == 200 and me.get("email") == "smoke@example.com")
        )
        token = tokens.get("access_token")
        status, subject = call("POST", f"{base}/api/v1/subjects/", {"name": "Chemistry"}, token)
        status, document = upload(
            f"{base}/api/v1/subjects/{subject['id']}/documents",
            token,
            "lab.txt",
            b"Titration of a weak acid with phenolphthalein",
        )
        checks.append(("upload a text document → 201, text pending", status == 201))
        text_status = document.get("text_status")
        for _ in range(100):  # the worker extracts it
            if text_status != "pending":
                break
            time.sleep(0.2)
            text_status = call("GET", f"{base}/api/v1/documents/{document['id']}", token=token)[
                1
            ].get("text_status")
        checks.append(("the worker: text_status → ready", text_status == "ready"))
        status, hits = call("GET", f"{base}/api/v1/search?q=phenolphth", token=token)
        checks.append(
            (
                "search finds the extracted text",
                status == 200 and [h["id"] for h in hits] == [document["id"]],
            )
        )
        status, body = call("GET", f"{base}/api/v1/nothing-here")
        checks.append(
            ("unknown URL → 404 in the error shape", status == 404 and body.get("code") == 404)
        )
        # gunicorn answers a request it cannot take before the app sees it, in its own
        # words (README, "Serving"); the server goes on answering.
        status, _, _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000)
        health = call("GET", f"{base}/health")[0]
        checks.append(
            (
                "headers too large → gunicorn's own 431, and it answers on",
                (status, health) == (431, 200),
            )
        )
        scrape = urllib.request.Request(
            f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        with urllib.request.urlopen(scrape, timeout=10) as response:
            metrics = response.read().decode()
        promtool = subprocess.run(
            ["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True
        )
        checks.append(
            (
                "GET /metrics passes promtool check metrics, with the worker's jobs",
                promtool.returncode == 0
                and 'eleva_jobs_total{job="eleva.services.document_text.extract_document_text",'
                'outcome="succeeded"}'
                in metrics
                and 'route="/api/v1/users/me"' in metrics,
            )
        )
        if promtool.returncode:
            print(promtool.stdout + promtool.stderr)
    finally:
        web.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGTERM)
        code = web.wait(timeout=40)
        worker_code = worker.wait(timeout=40)
    web_log = (logs / "web.log").read_text()
    worker_log = (logs / "worker.log").read_text()
    checks.append(
        (
            "every log line is JSON (LOG_FORMAT's production default)",
            _all_json(web_log + worker_log),
        )
    )
    checks.append(("no password in the logs", user["password"] not in web_log + worker_log))
    for name, ok in checks:
        print(("  ok   " if ok else "  FAIL ") + name)
    failed = [name for name, ok in checks if not ok]
    if failed:
        print("web log:\n" + web_log[-3000:] + "\nworker log:\n" + worker_log[-3000:])
    print(f"gunicorn exited with {code}, the worker with {worker_code} after SIGTERM")
    return 1 if failed or code != 0 or worker_code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
