"""The export of a student with 200 MB of documents and 2,000 notes, local storage and S3.

    python -m bench.export [--documents-mb 200] [--notes 2000] [--runs 3] [--storage local,s3]

Each run is the worker's job in a fresh process; its peak memory growth is VmHWM (reset
before the job) minus VmRSS. Guard (issue 30): ≤ 50 MB, whatever the archive's size."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import (
    ROOT,
    Machine,
    alternate,
    free_port,
    median,
    production_env,
    rule,
    scratch_database,
    table,
)

MB = 1024 * 1024
DOCUMENT_MB = 5
SUBJECTS = 20
BUCKET = "eleva-bench-export"
# boto3 reads them from the environment, not from the app's configuration.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
WORDS = [
    "vector", "matrix", "eigenvalue", "proof", "lemma", "theorem", "derivative", "integral",
    "limit", "series", "équation", "dérivée", "intégrale", "数学", "fonction", "continuity",
    "basis", "span", "kernel", "image",
]  # fmt: skip


def note_body(i: int) -> str:
    """1 to 6 KB of Markdown."""
    words = [WORDS[(i * 7 + j) % len(WORDS)] for j in range(150 + (i % 6) * 140)]
    lines = [" ".join(words[k : k + 12]) for k in range(0, len(words), 12)]
    return f"# Note {i}\n\n" + "\n".join(
        f"- *{line}*" if n % 5 == 0 else line for n, line in enumerate(lines)
    )


def seed(envs: dict[str, dict[str, str]], documents_mb: int, notes: int) -> int:
    """The student's rows, and their documents (random bytes, incompressible as real PDFs
    are) written into every storage of ``envs``; the student's id."""
    from config import load_config
    from eleva import create_app
    from eleva.data.db import db
    from eleva.data.models import Document, Note, Subject, User
    from eleva.data.storage import storage

    apps = [create_app(load_config(env)) for env in envs.values()]
    now = datetime.now(UTC)
    count = documents_mb // DOCUMENT_MB
    keys = []
    with apps[0].app_context():
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
            for i in range(SUBJECTS)
        ]
        db.session.add_all(subjects)
        db.session.flush()
        rows = []
        for i in range(notes):
            body = note_body(i)
            rows.append(
                {
                    "owner_id": user.id,
                    "subject_id": subjects[i % SUBJECTS].id,
                    "title": f"Note {i} — {WORDS[i % len(WORDS)]}",
                    "body": body,
                    "excerpt": body[:200],
                    "created_at": now - timedelta(minutes=i),
                    "updated_at": now,
                }
            )
        db.session.execute(Note.__table__.insert(), rows)
        for i in range(count):
            keys.append(f"documents/{user.id}/{uuid.uuid4().hex}")
            db.session.add(
                Document(
                    owner_id=user.id,
                    subject_id=subjects[i % SUBJECTS].id,
                    title=f"Slides {i}",
                    filename=f"slides-{i}.pdf",
                    content_type="application/pdf",
                    size=DOCUMENT_MB * MB,
                    storage_key=keys[-1],
                    status="ready",
                    text_status="failed",
                )
            )
        user.storage_used = count * DOCUMENT_MB * MB
        db.session.commit()
        user_id = user.id
    chunk = os.urandom(MB)
    for app in apps:
        with app.app_context():
            for key in keys:
                with tempfile.TemporaryFile() as fh:
                    fh.write(b"%PDF-1.7\n")
                    for _ in range(DOCUMENT_MB):
                        fh.write(chunk)
                    fh.truncate(DOCUMENT_MB * MB)
                    fh.seek(0)
                    storage.save_stream(key, fh, "application/pdf")
    return user_id


def vm(field: str) -> int:
    """A field of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(user_id: int) -> None:
    """One export built as the worker's job builds it; its figures as JSON."""
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
    with app.app_context():  # what every job of a worker has loaded already
        db.session.execute(db.select(Export.id).limit(1)).all()
        db.session.rollback()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = vm("VmRSS")
    started = time.perf_counter()
    with app.app_context():
        exports.build_export(export_id)
    seconds = time.perf_counter() - started
    growth = vm("VmHWM") - before
    with app.app_context():
        done = db.session.get(Export, export_id)
        figures = {"status": done.status, "size": done.size, "seconds": seconds}
    print(json.dumps(figures | {"growth": growth, "rss_before": before}))


def run(env: dict[str, str], user_id: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", str(user_id)],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def moto_server(stack: ExitStack) -> str:
    """An S3 server (moto) over HTTP, with the bucket, stopped at the end; its URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.update(CREDENTIALS)  # for the seeding, in this process
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    return endpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents-mb", type=int, default=200)
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="exports with each storage")
    parser.add_argument("--storage", default="local,s3", help="local, s3 (moto over HTTP)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    storages = args.storage.split(",")
    if not storages or set(storages) - {"local", "s3"}:
        parser.error("--storage: local, s3 or both")

    machine = Machine()
    with ExitStack() as stack:
        media = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-export-")))
        url = stack.enter_context(scratch_database("eleva_bench_export"))
        base = production_env(url, media) | {"LOG_LEVEL": "WARNING"}
        envs = {"local": base}
        if "s3" in storages:
            envs["s3"] = (
                base
                | {
                    "STORAGE_BACKEND": "s3",
                    "S3_BUCKET": BUCKET,
                    "S3_REGION": "us-east-1",
                    "S3_ENDPOINT_URL": moto_server(stack),
                }
                | CREDENTIALS
            )
        envs = {name: envs[name] for name in storages}
        started = time.perf_counter()
        user_id = seed(envs, args.documents_mb, args.notes)
        seeded = time.perf_counter() - started
        results = alternate(storages, args.runs, lambda name: run(envs[name], user_id))

    rule("bench.export")
    print(f"machine: {machine.describe()}")
    print(f"while running: {machine.activity()}")
    print(
        f"{args.notes:,} notes of 1–6 KB in {SUBJECTS} subjects, "
        f"{args.documents_mb // DOCUMENT_MB} documents of {DOCUMENT_MB} MB (random bytes), "
        f"seeded in {seeded:.0f} s; {args.runs} exports with each storage, alternating; "
        "production configuration, each export in a fresh process\n"
    )
    rows = []
    for name in storages:
        got = results[name]
        assert all(r["status"] == "ready" for r in got), got
        seconds = median([r["seconds"] for r in got])
        size = median([r["size"] for r in got]) / MB
        rows.append(
            [
                "S3 (moto over HTTP)" if name == "s3" else "local",
                size,
                seconds,
                size / seconds,
                max(r["growth"] for r in got) / MB,
                median([r["rss_before"] for r in got]) / MB,
                " ".join(f"{r['seconds']:.1f}/{r['growth'] / MB:.1f}" for r in got),
            ]
        )
    table(
        [
            "storage",
            "archive MB",
            "wall s",
            "MB/s",
            "peak growth MB (worst)",
            "RSS before MB",
            "s / MB by run",
        ],
        rows,
    )
    worst = max(row[4] for row in rows)
    print(f"\nguard: peak growth ≤ 50 MB: {worst:.1f}, {'met' if worst <= 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
