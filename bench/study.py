"""The review queue and the stats of one student among 1,000,000 cards, on PostgreSQL.

    python -m bench.study [--requests 1000]

Guards (issue 29): the queue p50 ≤ 15 ms and p90 ≤ 30 ms, the stats over 365 days p50 ≤
50 ms, a review POST ≤ 2 × the CPU of a note PATCH. Prints the statements' plans."""

# ruff: noqa: S608
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.harness import (
    Machine,
    analyze,
    execute,
    median,
    percentile,
    production_env,
    rule,
    scratch_database,
    table,
)

STUDENT_CARDS = 20_000
STUDENT_DUE = 2_000
STUDENT_NEW = 6_000
STUDENT_REVIEWS = 100_000
STUDENTS = 1_000
CARDS_EACH = 1_000


def seed_sql(owner: int, subject: int) -> list[str]:
    """The other students and everyone's cards and reviews, one INSERT … SELECT each."""
    due, new = STUDENT_DUE, STUDENT_DUE + STUDENT_NEW
    return [
        f"""INSERT INTO users (email, username, password_hash, created_at, updated_at)
            SELECT 'other' || g || '@example.com', 'other' || g, 'x', now(), now()
              FROM generate_series(1, {STUDENTS - 1}) g""",
        """INSERT INTO subjects (owner_id, name, created_at, updated_at)
           SELECT id, 'Subject', now(), now() FROM users WHERE username LIKE 'other%'""",
        # Theirs: due over the coming year, a fifth new.
        f"""INSERT INTO cards (owner_id, subject_id, front, back, state, stability, difficulty,
                               due, last_review_at, reps, created_at, updated_at)
            SELECT s.owner_id, s.id, 'Question ' || g, 'Answer ' || g,
                   CASE WHEN g % 5 = 0 THEN 'new' ELSE 'review' END,
                   CASE WHEN g % 5 = 0 THEN NULL ELSE 10 END,
                   CASE WHEN g % 5 = 0 THEN NULL ELSE 5 END,
                   now() + (g % 365 - 30) * interval '1 day' + interval '1 hour',
                   CASE WHEN g % 5 = 0 THEN NULL ELSE now() - interval '10 days' END,
                   CASE WHEN g % 5 = 0 THEN 0 ELSE 3 END, now(), now()
              FROM subjects s JOIN users u ON u.id = s.owner_id AND u.username LIKE 'other%',
                   generate_series(1, {CARDS_EACH}) g""",
        # The student's: 2,000 due now (a tenth learning or relearning), 6,000 new, the
        # rest due over the coming year.
        f"""INSERT INTO cards (owner_id, subject_id, front, back, state, step, stability,
                               difficulty, due, last_review_at, reps, lapses, created_at,
                               updated_at)
            SELECT {owner}, {subject}, 'Which bone is number ' || g || '?', 'That one.',
                   CASE WHEN g <= {due // 20} THEN 'learning'
                        WHEN g <= {due // 10} THEN 'relearning'
                        WHEN g <= {due} THEN 'review'
                        WHEN g <= {new} THEN 'new' ELSE 'review' END,
                   CASE WHEN g <= {due // 10} THEN 0 END,
                   CASE WHEN g > {due} AND g <= {new} THEN NULL ELSE 12 END,
                   CASE WHEN g > {due} AND g <= {new} THEN NULL ELSE 5 END,
                   CASE WHEN g <= {due} THEN now() - (g % 240) * interval '1 hour'
                        WHEN g <= {new} THEN now() - interval '40 days'
                        ELSE now() + (1 + g % 365) * interval '1 day' END,
                   CASE WHEN g > {due} AND g <= {new} THEN NULL
                        ELSE now() - interval '12 days' END,
                   CASE WHEN g > {due} AND g <= {new} THEN 0 ELSE 4 END,
                   0, now() - interval '40 days' + g * interval '1 second',
                   now() - interval '40 days'
              FROM generate_series(1, {STUDENT_CARDS}) g""",
        # The student's reviews over the last 365 days, of 2,000 of their cards.
        f"""INSERT INTO reviews (owner_id, card_id, rating, reviewed_at, duration_ms,
                                 before_state, before_due, before_reps, before_lapses, state,
                                 stability, difficulty, due, created_at)
            SELECT {owner}, (SELECT min(id) FROM cards WHERE owner_id = {owner}) + g % 2000,
                   1 + g % 4,
                   now() - (g % 365) * interval '1 day' - (g % 997) * interval '1 minute',
                   2000 + g % 9000, CASE WHEN g % 7 = 0 THEN 'learning' ELSE 'review' END,
                   now(), 3, 0, 'review', 12, 5, now(), now()
              FROM generate_series(1, {STUDENT_REVIEWS}) g""",
    ]


def timed(n: int, call: Callable[[], Any]) -> list[float]:
    """``n`` calls after one to warm up (caches, plans, the pool); each one's ms."""
    call()
    took = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        took.append((time.perf_counter() - start) * 1000)
    return took


def capture(app: Any, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The statements ``call`` sends through the engine, without each transaction's
    settings (eleva/data/db.py)."""
    from eleva.data.db import db, is_begin

    sent: list[tuple[str, Any]] = []

    def listen(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if not is_begin(statement):
            sent.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            call()
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
    return sent


def explain(url: str, statements: list[tuple[str, Any]]) -> str:
    """Each statement's EXPLAIN (ANALYZE, BUFFERS), run by itself."""
    plans = []
    for sql, params in statements:
        rows = execute(url, "EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plans.append("\n".join(row[0] for row in rows))
    return ("\n" + "-" * 80 + "\n").join(plans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed calls of each")
    parser.add_argument("--reviews", type=int, default=400, help="review POSTs and note PATCHes")
    args = parser.parse_args()

    machine = Machine()
    with ExitStack() as stack:
        media = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-study-")))
        url = stack.enter_context(scratch_database("eleva_bench_study"))
        from config import load_config
        from eleva import create_app
        from eleva.core.study import StudySettings
        from eleva.services import study

        env = production_env(url, media) | {"LOG_LEVEL": "WARNING"}
        app = create_app(load_config(env))
        client = app.test_client()

        # The student through the API, everyone's data through SQL.
        password = "bench-student-password-1"
        account = {"username": "student", "email": "student@example.com", "password": password}
        owner = client.post("/api/v1/auth/register", json=account).json["id"]
        token = client.post("/api/v1/auth/login", json={"login": "student", "password": password})
        headers = {"Authorization": f"Bearer {token.json['access_token']}"}
        sid = client.post("/api/v1/subjects/", json={"name": "Anatomy"}, headers=headers).json["id"]
        nid = client.post(
            f"/api/v1/subjects/{sid}/notes", json={"title": "Bones"}, headers=headers
        ).json["id"]
        started = time.perf_counter()
        for sql in seed_sql(owner, sid):
            execute(url, sql)
        analyze(url)
        seeded = time.perf_counter() - started
        settings = StudySettings()

        def queue() -> Any:
            with app.app_context():
                return study.queue(owner, settings, limit=50)

        def stats() -> Any:
            with app.app_context():
                return study.stats(owner, settings, days=365)

        listed = queue()
        n_stats = max(20, args.requests // 4)
        timings = {
            "queue, service": timed(args.requests, queue),
            "stats 365 days, service": timed(n_stats, stats),
            "GET /reviews/queue, app": timed(
                args.requests, lambda: client.get("/api/v1/reviews/queue", headers=headers)
            ),
            "GET /reviews/stats?days=365, app": timed(
                n_stats, lambda: client.get("/api/v1/reviews/stats?days=365", headers=headers)
            ),
        }
        queue_sql, stats_sql = capture(app, queue), capture(app, stats)
        plans = {
            "the queue": explain(url, queue_sql),
            "the stats, 365 days": explain(url, stats_sql),
        }

        # A review POST against a note PATCH, one after the other: the process's CPU.
        card_ids = [
            row[0]
            for row in execute(
                url,
                "SELECT id FROM cards WHERE owner_id = %(owner)s ORDER BY id LIMIT %(n)s",
                {"owner": owner, "n": args.reviews},
            )
        ]
        cpu: dict[str, list[float]] = {"review POST": [], "note PATCH": []}
        for i, card in enumerate(card_ids):
            start = time.process_time()
            answer = client.post(
                f"/api/v1/cards/{card}/reviews", json={"rating": 3}, headers=headers
            )
            cpu["review POST"].append((time.process_time() - start) * 1000)
            assert answer.status_code == 201, answer.json
            start = time.process_time()
            answer = client.patch(f"/api/v1/notes/{nid}", json={"body": f"v{i}"}, headers=headers)
            cpu["note PATCH"].append((time.process_time() - start) * 1000)
            assert answer.status_code == 200, answer.json

        rule("bench.study")
        print(f"machine: {machine.describe()}")
        print(f"while running: {machine.activity()}")
        print(
            f"{STUDENTS:,} students, {STUDENTS * CARDS_EACH + STUDENT_CARDS - CARDS_EACH:,} "
            f"cards; the student: {STUDENT_CARDS:,} cards, {STUDENT_DUE:,} due, "
            f"{STUDENT_REVIEWS:,} reviews over 365 days (seeded in {seeded:.0f} s)\n"
            f"production configuration, in process: the service in an app context, the app "
            f"through Flask's test client (auth, parsing, JSON; no socket)\n"
            f"queue: {listed.counts}, {len(listed.cards)} cards listed; statements: queue "
            f"{len(queue_sql)}, stats {len(stats_sql)}\n"
        )
        table(
            ["ms", "calls", "p50", "p90", "p99", "max"],
            [
                [name, len(t), percentile(t, 50), percentile(t, 90), percentile(t, 99), max(t)]
                for name, t in timings.items()
            ],
        )
        print()
        table(
            ["CPU ms per request", "requests", "median"],
            [[k, len(v), median(v)] for k, v in cpu.items()],
        )
        q, s = timings["queue, service"], timings["stats 365 days, service"]
        ratio = median(cpu["review POST"]) / median(cpu["note PATCH"])
        guards = [
            ("queue p50 ≤ 15 ms", percentile(q, 50), percentile(q, 50) <= 15),
            ("queue p90 ≤ 30 ms", percentile(q, 90), percentile(q, 90) <= 30),
            ("stats p50 ≤ 50 ms", percentile(s, 50), percentile(s, 50) <= 50),
            ("review ÷ PATCH CPU ≤ 2", ratio, ratio <= 2),
        ]
        print()
        for name, value, ok in guards:
            print(f"guard {name}: {value:.2f}, {'met' if ok else 'MISSED'}")
        for title, plan in plans.items():
            rule(f"{title}: EXPLAIN (ANALYZE, BUFFERS)")
            print(plan)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
