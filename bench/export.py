"""Export: the archive of a student with 200 MB of documents and 2,000 notes.

    python -m bench.export [--documents-mb 200] [--notes 2000] [--s3] [--runs 2]

A scratch PostgreSQL database (``eleva_bench_export``, on the server of
``BENCH_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``) is made
and migrated, the student's rows are inserted directly (20 subjects; notes of 1–6 KB of
Markdown; documents of 5 MB of random bytes, incompressible as real PDFs are, written
straight into local storage or, with ``--s3``, into a moto server over HTTP), and the
database is dropped at the end.

Each run builds the export in a fresh subprocess, as the worker's job does
(``eleva.services.exports.build_export``). Reported: the job's wall time, the archive's
size, and the growth of the process's peak RSS during the job — VmHWM (reset through
/proc/self/clear_refs just before the job) minus VmRSS before it — the target being
≤ 50 MB whatever the size of the archive.
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
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

MB = 1024 * 1024
DATABASE = "eleva_bench_export"
SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BUCKET = "eleva-bench-export"
WORDS = [
    "vector",
    "matrix",
    "eigenvalue",
    "proof",
    "lemma",
    "theorem",
    "derivative",
    "integral",
    "limit",
    "series",
    "équation",
    "dérivée",
    "intégrale",
    "数学",
    "fonction",
    "continuity",
    "basis",
    "span",
    "kernel",
    "image",
]


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _database_url() -> str:
    base = SERVER.rsplit("/", 1)[0]
    return f"{base}/{DATABASE}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql)


def _env(media: Path, endpoint: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "STORAGE_", "S3_", "REDIS_", "LOCAL_STORAGE", "ELEVA_"))
    }
    env.update(
        ELEVA_ENV="development",
        DATABASE_URL=_database_url(),
        LOCAL_STORAGE_PATH=str(media),
        LOG_LEVEL="WARNING",
        FLASK_APP="wsgi",
    )
    if endpoint:
        env.update(
            STORAGE_BACKEND="s3",
            S3_BUCKET=BUCKET,
            S3_REGION="us-east-1",
            S3_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
        )
    return env


# -- the student ------------------------------------------------------------------------


def _note_body(i: int) -> str:
    words = [WORDS[(i * 7 + j) % len(WORDS)] for j in range(150 + (i % 6) * 140)]
    lines = [" ".join(words[k : k + 12]) for k in range(0, len(words), 12)]
    return f"# Note {i}\n\n" + "\n".join(
        f"- *{line}*" if n % 5 == 0 else line for n, line in enumerate(lines)
    )


def seed(env: dict[str, str], documents_mb: int, notes: int) -> int:
    """Insert the student (rows directly, files straight into storage); their id."""
    os.environ.update(env)
    from eleva import create_app
    from eleva.data.db import db
    from eleva.data.models import Document, Note, Subject, User
    from eleva.data.storage import storage

    app = create_app()
    now = datetime.now(UTC)
    with app.app_context():
        user = User(email="bench@example.com", username="bench", password_hash="x" * 60)
        db.session.add(user)
        db.session.flush()
        subjects = [
            Subject(
                owner_id=user.id,
                name=f"Subject {i}",
                description="Bench",
                created_at=now,
                updated_at=now,
            )
            for i in range(20)
        ]
        db.session.add_all(subjects)
        db.session.flush()
        rows = []
        for i in range(notes):
            body = _note_body(i)
            rows.append(
                {
                    "owner_id": user.id,
                    "subject_id": subjects[i % 20].id,
                    "title": f"Note {i} — {WORDS[i % len(WORDS)]}",
                    "body": body,
                    "excerpt": body[:200],
                    "created_at": now - timedelta(minutes=i),
                    "updated_at": now,
                }
            )
        db.session.execute(Note.__table__.insert(), rows)
        count = documents_mb // 5
        chunk = os.urandom(MB)
        for i in range(count):
            key = f"documents/{user.id}/{uuid.uuid4().hex}"
            with tempfile.TemporaryFile() as fh:
                fh.write(b"%PDF-1.7\n")
                for _ in range(5):
                    fh.write(chunk)
                fh.truncate(5 * MB)
                fh.seek(0)
                storage.save_stream(key, fh, "application/pdf")
            db.session.add(
                Document(
                    owner_id=user.id,
                    subject_id=subjects[i % 20].id,
                    title=f"Slides {i}",
                    filename=f"slides-{i}.pdf",
                    content_type="application/pdf",
                    size=5 * MB,
                    storage_key=key,
                    status="ready",
                    text_status="failed",
                )
            )
        user.storage_used = count * 5 * MB
        db.session.commit()
        return user.id


# -- one run, in its own process --------------------------------------------------------


def child(user_id: int) -> None:
    """Build one export as the job does; print its figures as JSON."""
    from eleva import create_app
    from eleva.data.db import db
    from eleva.data.models import Export
    from eleva.services import exports

    app = create_app()
    with app.app_context():
        export = Export(user_id=user_id, status="pending")
        db.session.add(export)
        db.session.commit()
        export_id = export.id
    # Warm: what every job of the worker has loaded already.
    with app.app_context():
        db.session.execute(db.select(Export.id).limit(1)).all()
        db.session.rollback()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    started = time.perf_counter()
    with app.app_context():
        exports.build_export(export_id)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    with app.app_context():
        done = db.session.get(Export, export_id)
        print(
            json.dumps(
                {
                    "status": done.status,
                    "size": done.size,
                    "seconds": seconds,
                    "peak_growth": peak - before,
                    "rss_before": before,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents-mb", type=int, default=200)
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--s3", action="store_true", help="Storage on a moto server (HTTP).")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    server = None
    endpoint = None
    with tempfile.TemporaryDirectory(prefix="eleva-bench-export-") as tmp:
        if args.s3:
            import logging
            import socket

            import boto3
            from moto.server import ThreadedMotoServer

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            endpoint = f"http://127.0.0.1:{port}"
            boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ).create_bucket(Bucket=BUCKET)
        env = _env(Path(tmp) / "media", endpoint)
        _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{DATABASE}"')
        try:
            subprocess.run(
                [sys.executable, "-m", "flask", "db", "upgrade"],
                env=env,
                cwd=os.path.dirname(_HERE),
                check=True,
                capture_output=True,
            )
            started = time.perf_counter()
            user_id = seed(env, args.documents_mb, args.notes)
            print(
                f"seeded: {args.notes} notes, {args.documents_mb // 5} documents of 5 MB "
                f"({'S3 via moto' if args.s3 else 'local storage'}) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            results = []
            for run in range(args.runs):
                out = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--child", str(user_id)],
                    env=env,
                    cwd=os.path.dirname(_HERE),
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(result)
                print(
                    f"run {run + 1}: {result['status']}, {result['size'] / MB:.1f} MB in "
                    f"{result['seconds']:.1f} s ({result['size'] / MB / result['seconds']:.0f} MB/s); "
                    f"peak RSS growth {result['peak_growth'] / MB:.1f} MB "
                    f"(RSS before {result['rss_before'] / MB:.0f} MB)"
                )
            growth = max(r["peak_growth"] for r in results) / MB
            seconds = statistics.median(r["seconds"] for r in results)
            verdict = "within" if growth <= 50 else "OVER"
            print(
                f"median wall time {seconds:.1f} s; worst peak growth {growth:.1f} MB "
                f"({verdict} the 50 MB target)"
            )
        finally:
            _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
