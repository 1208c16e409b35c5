"""Run the Procfile as a PaaS would, against PostgreSQL, and talk to it over HTTP.

release: `flask db upgrade` on a fresh database; web: the Procfile's gunicorn command on
a free port with two workers, in the production configuration. Then: /health/ready, a
register → login → GET /users/me round trip, and a clean exit on SIGTERM.
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


def raw(port: int, head: bytes) -> tuple[int, dict, dict[str, str]]:
    """Send ``head`` and the end of the headers as they are; status, JSON body, headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read() or b"null")
        return response.status, body, {k.lower(): v for k, v in response.getheaders()}


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
        "LOCAL_STORAGE_PATH": media,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "API_DOCS_ENABLED": "true",
    }
    commands = procfile()
    print("release:", commands["release"].strip())
    subprocess.run(shlex.split(commands["release"]), cwd=ROOT, env=env, check=True)

    print("web:", commands["web"].strip(), f"(PORT={port}, WEB_CONCURRENCY=2)")
    web = subprocess.Popen(shlex.split(commands["web"]), cwd=ROOT, env=env)
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
        status, body = call("GET", f"{base}/api/v1/nothing-here")
        checks.append(
            ("unknown URL → 404 in the error shape", status == 404 and body.get("code") == 404)
        )
        status, body, headers = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000)
        checks.append(
            (
                "headers too large → gunicorn's 431 in the error shape, security headers",
                status == 431
                and body.get("code") == 431
                and headers.get("x-content-type-options") == "nosniff"
                and "strict-transport-security" in headers,
            )
        )
        for name, ok in checks:
            print(("  ok   " if ok else "  FAIL ") + name)
        failed = [name for name, ok in checks if not ok]
    finally:
        web.send_signal(signal.SIGTERM)
        code = web.wait(timeout=40)
    print(f"gunicorn exited with {code} after SIGTERM")
    return 1 if failed or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
