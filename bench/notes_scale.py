"""Does listing a subject's notes stay fast as its notes grow?

    python -m bench.notes_scale [--requests 300] [--quick]

p50 latency of GET /api/v1/subjects/<id>/notes?page_size=20 for a user whose subject
has 100 notes and for one whose subject has 100,000, in process (Flask test client,
production configuration) against a fresh PostgreSQL database (eleva_bench_notes,
dropped at the end). Notes (2 KB Markdown bodies) are seeded with INSERT … SELECT
generate_series, then VACUUM ANALYZE. Target: the ratio < 2. Then the statements the
request sends, and the list's one statement under EXPLAIN (ANALYZE, BUFFERS) with the
generic plan the app uses, for the 100,000 case.
"""

# The path is fixed before the imports that follow it.
# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# As in bench/subjects_scale.py: bench/http.py must not shadow the standard library.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import json
import tempfile
import time
from typing import Any

from bench._common import (
    StatementCounter,
    app_engine,
    machine,
    make_app,
    percentile,
    production_env,
    rule,
    scratch_database,
    verdict,
)
from bench.subjects_scale import account, explain, latencies, vacuum_analyze

SIZES = {"small": 100, "large": 100_000}
TARGET_RATIO = 2.0


def seed(engine: Any, owner_id: int, subject_id: int, n: int) -> None:
    with engine.raw_connection() as raw:
        with raw.cursor() as cursor:
            # 100,000 rows of 2 KB with three indexes and two foreign keys: longer than
            # the app's 15 s statement timeout on a small shared machine.
            cursor.execute("SET LOCAL statement_timeout = 0")
            cursor.execute(
                """
                INSERT INTO notes (owner_id, subject_id, title, body, excerpt,
                                   created_at, updated_at)
                SELECT %(owner)s, %(subject)s, 'Lecture ' || g,
                       '# Lecture ' || g || E'\n\n' || repeat('Some *Markdown* text. ', 90),
                       left('Lecture ' || g || ' ' || repeat('Some Markdown text. ', 10), 199)
                         || '…',
                       now() - g * interval '1 second', now() - g * interval '1 second'
                FROM generate_series(1, %(n)s) AS g
                """,
                {"owner": owner_id, "subject": subject_id, "n": n},
            )
        raw.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per user")
    parser.add_argument("--quick", action="store_true", help="100 requests per user")
    args = parser.parse_args()
    n = 100 if args.quick else args.requests

    rule("bench.notes_scale")
    print(f"machine: {machine()}")
    with (
        tempfile.TemporaryDirectory(prefix="eleva-bench-notes-") as media,
        scratch_database("eleva_bench_notes") as url,
    ):
        app = make_app(production_env(url, media, BCRYPT_ROUNDS="4", LOG_LEVEL="WARNING"))
        engine = app_engine(app)
        try:
            run(app, engine, n)
        finally:
            engine.dispose()
    return 0


def run(app: Any, engine: Any, n: int) -> None:
    client = app.test_client()
    headers, lists = {}, {}
    started = time.perf_counter()
    for name, size in SIZES.items():
        owner_id, headers[name] = account(client, name)
        subject = client.post("/api/v1/subjects/", json={"name": "Physics"}, headers=headers[name])
        assert subject.status_code == 201, subject.json
        lists[name] = f"/api/v1/subjects/{subject.json['id']}/notes?page_size=20"
        seed(engine, owner_id, subject.json["id"], size)
    vacuum_analyze(engine)
    print(
        f"seeded {sum(SIZES.values()):,} notes and analysed in {time.perf_counter() - started:.1f} s"
    )

    for name in SIZES:
        response = app.test_client().get(lists[name], headers=headers[name])
        total = json.loads(response.headers["X-Pagination"])["total"]
        assert len(response.json) == 20 and total == SIZES[name], (len(response.json), total)

    # Warm-up, then alternate the two users so that drift hits both alike.
    plan = [(k, lists[k], headers[k]) for k in SIZES]
    latencies(client, plan * 20)
    samples = latencies(client, plan * n)
    sorted_plan = [(k, lists[k] + "&sort=title", headers[k]) for k in SIZES]
    by_title = latencies(client, sorted_plan * max(20, n // 3))

    p50 = {k: percentile(v, 50) for k, v in samples.items()}
    print(f"\nGET /api/v1/subjects/<id>/notes?page_size=20, {n} requests per user, in process:\n")
    print(f"{'notes':>10}{'p50 ms':>9}{'p90 ms':>9}{'sort=title p50':>16}")
    for name, size in SIZES.items():
        print(
            f"{size:>10,}{p50[name]:>9.2f}{percentile(samples[name], 90):>9.2f}"
            f"{percentile(by_title[name], 50):>16.2f}"
        )
    ratio = p50["large"] / p50["small"]
    print(
        f"\ntarget: p50 ratio 100,000 ÷ 100 < {TARGET_RATIO:g}: {ratio:.2f} "
        f"({verdict(ratio < TARGET_RATIO)})"
    )

    counter = StatementCounter(engine)
    try:
        counts = {}
        for name in SIZES:
            counter.reset()
            client.get(lists[name], headers=headers[name])
            counts[name] = len(counter.statements)
        statements = list(counter.statements)
    finally:
        counter.close()
    print(
        "statements per request: "
        + ", ".join(f"{SIZES[k]:,} notes: {v}" for k, v in counts.items())
    )
    for statement, parameters in statements:
        if "FROM notes" not in statement:
            continue
        rule("EXPLAIN (ANALYZE, BUFFERS) EXECUTE, generic plan, 100,000 notes")
        print(" ".join(statement.split()))
        print(f"parameters: {parameters}\n")
        print(explain(engine, statement, parameters))


if __name__ == "__main__":
    raise SystemExit(main())
