"""Studying at scale, on PostgreSQL: the review queue, the stats, and a review's CPU.

    python -m bench.study --database-url postgresql+psycopg://postgres@127.0.0.1:5432/eleva_study

Empties the given database (DROP SCHEMA public CASCADE, then the migrations), then with
INSERT … SELECT generate_series: 1,000 students with 1,000 cards each (1,000,000 cards),
one of whom has 20,000 cards, 2,000 of them due (learning, relearning and review) and
100,000 reviews over 365 days. Then, in process with a production configuration:

- the queue (``eleva.services.study.queue``, limit 50) p50/p90 in ms, and its two
  statements under EXPLAIN (ANALYZE, BUFFERS); targets p50 <= 15 ms, p90 <= 30 ms;
- the stats over 365 days (``stats(days=365)``) p50; target <= 50 ms; and their plans;
- the same two through the whole app (Flask test client: auth, parsing, JSON);
- the CPU of a review POST against a note PATCH (process time per request through the
  test client, the same overhead on both sides); target: the ratio <= 2.

Prints figures; not a test. Self-contained (no bench._common).
"""

# The path is fixed before the imports that follow it.
# ruff: noqa: E402, S608
from __future__ import annotations

import os
import sys

# bench/http.py must not shadow the standard library's http.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text

STUDENT_CARDS = 20_000
STUDENT_DUE = 2_000
STUDENT_REVIEWS = 100_000
STUDENTS = 1_000
CARDS_EACH = 1_000


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(n: int, call: Callable[[], Any]) -> list[float]:
    call()  # warm: caches, the plan, the connection
    took = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        took.append(time.perf_counter() - start)
    return took


def make_app(database_url: str, media: str) -> Any:
    from config import load_config
    from eleva import create_app

    env = {
        "ELEVA_ENV": "production",
        "MAIL_BACKEND": "dummy",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "LOCAL_STORAGE_PATH": media,
        "RATELIMIT_ENABLED": "false",
        "RATELIMIT_STORAGE_URI": "memory://",
        "CORS_ORIGINS": "http://localhost:5173",
    }
    return create_app(load_config(env))


def reset_schema(app: Any) -> None:
    from flask_migrate import upgrade

    from eleva.data.db import db

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()


def seed(app: Any, client: Any) -> tuple[dict[str, str], int, int]:
    """The student (registered through the API) and everyone's data by SQL."""
    from eleva.data.db import db

    password = "bench-student-password-1"
    client.post(
        "/api/v1/auth/register",
        json={"username": "student", "email": "student@example.com", "password": password},
    )
    token = client.post("/api/v1/auth/login", json={"login": "student", "password": password})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    sid = client.post("/api/v1/subjects/", json={"name": "Anatomy"}, headers=headers).json["id"]
    nid = client.post(
        f"/api/v1/subjects/{sid}/notes", json={"title": "Bones"}, headers=headers
    ).json["id"]
    steps = [
        "SET LOCAL statement_timeout = 0",
        # The other 999 students, one subject each, by SQL.
        f"""INSERT INTO users (email, username, password_hash, created_at, updated_at)
            SELECT 'other' || g || '@example.com', 'other' || g, 'x', now(), now()
              FROM generate_series(1, {STUDENTS - 1}) g""",
        """INSERT INTO subjects (owner_id, name, created_at, updated_at)
           SELECT id, 'Subject', now(), now() FROM users WHERE username LIKE 'other%'""",
        # 1,000 cards each, due over the next year, a fifth new.
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
        # The student: 20,000 cards, 2,000 of them due now (a tenth learning or
        # relearning), 6,000 new, the rest due over the coming year.
        f"""INSERT INTO cards (owner_id, subject_id, front, back, state, step, stability,
                               difficulty, due, last_review_at, reps, lapses, created_at,
                               updated_at)
            SELECT :owner, :subject, 'Which bone is number ' || g || '?', 'That one.',
                   CASE WHEN g <= {STUDENT_DUE // 20} THEN 'learning'
                        WHEN g <= {STUDENT_DUE // 10} THEN 'relearning'
                        WHEN g <= {STUDENT_DUE} THEN 'review'
                        WHEN g <= {STUDENT_DUE} + 6000 THEN 'new' ELSE 'review' END,
                   CASE WHEN g <= {STUDENT_DUE // 10} THEN 0 END,
                   CASE WHEN g > {STUDENT_DUE} AND g <= {STUDENT_DUE} + 6000 THEN NULL ELSE 12 END,
                   CASE WHEN g > {STUDENT_DUE} AND g <= {STUDENT_DUE} + 6000 THEN NULL ELSE 5 END,
                   CASE WHEN g <= {STUDENT_DUE} THEN now() - (g % 240) * interval '1 hour'
                        WHEN g <= {STUDENT_DUE} + 6000 THEN now() - interval '40 days'
                        ELSE now() + (1 + g % 365) * interval '1 day' END,
                   CASE WHEN g > {STUDENT_DUE} AND g <= {STUDENT_DUE} + 6000 THEN NULL
                        ELSE now() - interval '12 days' END,
                   CASE WHEN g > {STUDENT_DUE} AND g <= {STUDENT_DUE} + 6000 THEN 0 ELSE 4 END,
                   0, now() - interval '40 days' + g * interval '1 second',
                   now() - interval '40 days'
              FROM generate_series(1, {STUDENT_CARDS}) g""",
        # 100,000 reviews over the last 365 days, on the student's reviewed cards.
        f"""INSERT INTO reviews (owner_id, card_id, rating, reviewed_at, duration_ms,
                                 before_state, before_due, before_reps, before_lapses, state,
                                 stability, difficulty, due, created_at)
            SELECT :owner, (SELECT min(id) FROM cards WHERE owner_id = :owner) + g % 2000,
                   1 + g % 4,
                   now() - (g % 365) * interval '1 day' - (g % 997) * interval '1 minute',
                   2000 + g % 9000, CASE WHEN g % 7 = 0 THEN 'learning' ELSE 'review' END,
                   now(), 3, 0, 'review', 12, 5, now(), now()
              FROM generate_series(1, {STUDENT_REVIEWS}) g""",
    ]
    with app.app_context():
        owner = client.get("/api/v1/users/me", headers=headers).json["id"]
        with db.engine.begin() as conn:
            for sql in steps:
                conn.execute(text(sql), {"owner": owner, "subject": sid})
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return headers, sid, nid


def capture(app: Any, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    from eleva.data.db import db

    sent: list[tuple[str, Any]] = []

    def listen(_conn, _cursor, statement, parameters, _context, _many) -> None:
        sent.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            call()
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
    return sent


def explain(app: Any, statements: list[tuple[str, Any]]) -> None:
    from eleva.data.db import db

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for sql, params in statements:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print("\n".join(row[0] for row in cursor.fetchall()))
                print("-" * 80)
        finally:
            raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database to empty")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from eleva.core.study import StudySettings
    from eleva.services import study

    with tempfile.TemporaryDirectory() as media:
        app = make_app(args.database_url, media)
        client = app.test_client()
        print("seeding (1,000,000 cards, 100,000 reviews) …", flush=True)
        started = time.perf_counter()
        reset_schema(app)
        headers, _sid, nid = seed(app, client)
        print(f"seeded in {time.perf_counter() - started:.0f} s")
        owner = client.get("/api/v1/users/me", headers=headers).json["id"]
        settings = StudySettings()

        def queue() -> Any:
            with app.app_context():
                return study.queue(owner, settings, limit=50)

        def stats() -> Any:
            with app.app_context():
                return study.stats(owner, settings, days=365)

        got = queue()
        print(f"queue counts {got.counts}, {len(got.cards)} cards listed")
        q = timed(args.requests, queue)
        print(f"queue (service, in process): p50 {ms(percentile(q, 50))} ms, "
              f"p90 {ms(percentile(q, 90))} ms  (targets 15, 30)")  # fmt: skip
        s = timed(max(20, args.requests // 4), stats)
        print(f"stats 365 days (service): p50 {ms(percentile(s, 50))} ms, "
              f"p90 {ms(percentile(s, 90))} ms  (target p50 50)")  # fmt: skip
        hq = timed(args.requests, lambda: client.get("/api/v1/reviews/queue", headers=headers))
        print(f"GET /reviews/queue (whole app): p50 {ms(percentile(hq, 50))} ms, "
              f"p90 {ms(percentile(hq, 90))} ms")  # fmt: skip
        hs = timed(
            max(20, args.requests // 4),
            lambda: client.get("/api/v1/reviews/stats?days=365", headers=headers),
        )
        print(f"GET /reviews/stats?days=365 (whole app): p50 {ms(percentile(hs, 50))} ms")

        # A review POST against a note PATCH: process CPU per request.
        card_ids = [c.id for c in got.cards]
        cpu_review, cpu_patch = [], []
        for i in range(min(len(card_ids), args.requests)):
            start = time.process_time()
            response = client.post(
                f"/api/v1/cards/{card_ids[i]}/reviews", json={"rating": 3}, headers=headers
            )
            cpu_review.append(time.process_time() - start)
            assert response.status_code == 201, response.json
            start = time.process_time()
            response = client.patch(f"/api/v1/notes/{nid}", json={"body": f"v{i}"}, headers=headers)
            cpu_patch.append(time.process_time() - start)
            assert response.status_code == 200
        review_cpu, patch_cpu = statistics.median(cpu_review), statistics.median(cpu_patch)
        print(f"CPU per request (median of {len(cpu_review)}): review POST {ms(review_cpu)} ms, "
              f"note PATCH {ms(patch_cpu)} ms, ratio {review_cpu / patch_cpu:.2f} (target <= 2)")  # fmt: skip

        print("\n== the queue's statements, EXPLAIN (ANALYZE, BUFFERS) ==")
        explain(app, capture(app, queue))
        print("\n== the stats' statements (365 days), EXPLAIN (ANALYZE, BUFFERS) ==")
        explain(app, capture(app, stats))


if __name__ == "__main__":
    main()
