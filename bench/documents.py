"""Documents: a 25 MB upload through the API, and a direct upload that bypasses it.

    python -m bench.documents [--mb 25] [--runs 3]

Each case runs in a fresh subprocess (the app on SQLite in a temporary folder, local
storage there too, in production-like settings except the database):

- **through the API**: ``POST /subjects/<id>/documents`` of an ``--mb`` MB file, sent by
  Flask's test client from a file on disk (its body is spooled to a temporary file, not
  built in memory). Reported: the time of the request and the growth of the process's
  peak RSS during it — VmHWM (the resident high-water mark, reset through
  /proc/self/clear_refs just before the request) minus VmRSS before it — which must stay
  ≤ 32 MB: the file is never held whole in memory (werkzeug spools the part to disk,
  storage copies it in 1 MB chunks, type sniffing reads 64 KB at a time).
- **direct**: the same file through a presigned S3 POST to a moto server over real HTTP
  (``requests``), then ``complete``. Reported: the request bytes the API received (a
  WSGI middleware sums ``CONTENT_LENGTH``) against the file's size.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _make_file(folder: Path, mb: int) -> Path:
    """A PDF-headed file of ``mb`` MB, written in 1 MB chunks (never whole in memory)."""
    path = folder / "big.pdf"
    chunk = os.urandom(MB)
    with path.open("wb") as fh:
        fh.write(b"%PDF-1.7\n")
        for _ in range(mb):
            fh.write(chunk)
        fh.truncate(mb * MB)
    return path


def _app(folder: Path, **config: Any):
    from config import TestingConfig
    from eleva import create_app
    from eleva.data.db import db

    app = create_app(
        TestingConfig({}),
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite3'}",
            "LOCAL_STORAGE_PATH": str(folder / "media"),
            "TESTING": False,
            **config,
        },
    )
    with app.app_context():
        db.create_all()
    return app


def _account(client) -> tuple[dict[str, str], int]:
    body = {"username": "bench", "email": "bench@example.com", "password": "a long bench password"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    token = client.post(
        "/api/v1/auth/login", json={"login": "bench", "password": body["password"]}
    ).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    subject = client.post("/api/v1/subjects/", json={"name": "Bench"}, headers=headers).json["id"]
    return headers, subject


def through_api(mb: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _make_file(folder, mb)
        app = _app(folder)
        client = app.test_client()
        headers, subject = _account(client)
        url = f"/api/v1/subjects/{subject}/documents"
        # Warm up: the first request's imports and caches are not the upload's.
        small = client.post(
            url,
            data={"file": (open(os.devnull, "rb"), "empty.txt")},  # noqa: SIM115
            headers=headers,
            content_type="multipart/form-data",
        )
        assert small.status_code == 201, small.json
        with path.open("rb") as fh:
            Path("/proc/self/clear_refs").write_text("5")
            before = _status("VmRSS")
            started = time.perf_counter()
            response = client.post(
                url,
                data={"file": (fh, "big.pdf")},
                headers=headers,
                content_type="multipart/form-data",
            )
            elapsed = time.perf_counter() - started
            peak = _status("VmHWM")
        assert response.status_code == 201, response.json
        assert response.json["size"] == mb * MB
        return {"seconds": elapsed, "rss_growth_mb": (peak - before) / MB}


def direct(mb: int) -> dict[str, Any]:
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "bench"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(
            Bucket="bench"
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = _make_file(folder, mb)
            app = _app(
                folder,
                STORAGE_BACKEND="s3",
                S3_BUCKET="bench",
                S3_REGION="us-east-1",
                S3_ENDPOINT_URL=endpoint,
            )
            received = [0]
            inner = app.wsgi_app

            def counting(environ, start_response):
                received[0] += int(environ.get("CONTENT_LENGTH") or 0)
                return inner(environ, start_response)

            app.wsgi_app = counting  # type: ignore[method-assign]
            client = app.test_client()
            headers, subject = _account(client)
            received[0] = 0  # only the upload's requests count
            started = time.perf_counter()
            form = client.post(
                f"/api/v1/subjects/{subject}/documents/uploads",
                json={"filename": "big.pdf", "size": mb * MB},
                headers=headers,
            ).json
            with path.open("rb") as fh:
                sent = requests.post(
                    form["upload"]["url"],
                    data=form["upload"]["fields"],
                    files={"file": ("big.pdf", fh)},
                    timeout=120,
                )
            assert sent.status_code in (200, 201, 204), sent.text
            done = client.post(
                f"/api/v1/documents/{form['document']['id']}/complete", headers=headers
            )
            elapsed = time.perf_counter() - started
            assert done.status_code == 200, done.json
            return {"seconds": elapsed, "api_request_bytes": received[0], "file_bytes": mb * MB}
    finally:
        server.stop()


def _in_subprocess(case: str, mb: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.documents", "--case", case, "--mb", str(mb)],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(_HERE),
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=25)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", choices=["api", "direct"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        import logging

        logging.disable(logging.INFO)
        result = through_api(args.mb) if args.case == "api" else direct(args.mb)
        print(json.dumps(result))
        return
    api = [_in_subprocess("api", args.mb) for _ in range(args.runs)]
    print(f"{args.mb} MB upload through the API ({args.runs} runs, a fresh process each):")
    print(
        f"  time      median {statistics.median(r['seconds'] for r in api):.2f} s "
        f"(runs: {', '.join(format(r['seconds'], '.2f') for r in api)})"
    )
    growth = [r["rss_growth_mb"] for r in api]
    print(
        f"  peak RSS growth  max {max(growth):.1f} MB "
        f"(runs: {', '.join(format(g, '.1f') for g in growth)}) — limit 32 MB: "
        f"{'met' if max(growth) <= 32 else 'NOT met'}"
    )
    d = _in_subprocess("direct", args.mb)
    print(f"{args.mb} MB direct upload (presigned POST to a moto server over HTTP):")
    print(
        f"  time {d['seconds']:.2f} s; request bytes through the API: "
        f"{d['api_request_bytes']} (JSON of the two API calls) for a file of {d['file_bytes']} bytes"
    )


if __name__ == "__main__":
    main()
