"""Is search fast for a student with a lot of material, among many students?

    python -m bench.search [--queries 100] [--notes 1000000] [--quick]

A fresh PostgreSQL database (eleva_bench_search, dropped at the end) holds 200 users and
1,000,000 notes: the big user has 10,000 notes and 1,000 documents with extracted text
(about 20,000 characters each), the small user 100 notes and 10 documents, and 198 others
share the rest. Texts are words drawn from a 20,000-word vocabulary with a Zipf-like
law (rank r about as frequent as 1/r), so some words are everywhere and most are rare.

Searches go through the app in process (Flask test client, production configuration),
big and small user alternating, the same query list for both:

- one word: a word of rank 10 to 1,000 (the kind a student types), as a prefix;
- three words: three words of rank 10 to 3,000, the last as a prefix.

Printed: p50/p90 per user and kind, matches per query, the ratio big ÷ small, the
statements per request, and EXPLAIN (ANALYZE, BUFFERS) of the search for the big user
(no sequential scan of notes). Then, for information, a worst case: the most frequent
word, which matches nearly every note of the user. Targets: p50 ≤ 20 ms for both kinds on
the big user; p50 big ÷ small < 3.
"""

# The path is fixed before the imports that follow it.
# ruff: noqa: E402, S608
from __future__ import annotations

import os
import sys

# As in bench/subjects_scale.py: bench/http.py must not shadow the standard library.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import json
import random
import re
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
from bench.subjects_scale import account, latencies, vacuum_analyze

VOCABULARY = 20_000
USERS = 200
SUBJECTS_PER_USER = 10
BIG_NOTES, SMALL_NOTES = 10_000, 100
BIG_DOCS, SMALL_DOCS = 1_000, 10
NOTE_WORDS = 60  # about 400 characters
DOC_WORDS = 3_000  # about 20,000 characters
TARGET_MS = 20.0
TARGET_RATIO = 3.0
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["qu", "ch", "sh", "th"]


def vocabulary(seed: int = 7) -> list[str]:
    """20,000 distinct pronounceable words, the same every run."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def execute(engine: Any, *statements: tuple[str, Any]) -> None:
    with engine.raw_connection() as raw:
        with raw.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 0")
            for sql, params in statements:
                cursor.execute(sql, params)
        raw.commit()


# A text of n words: rank floor(V ** random()) is log-uniform, P(rank r) ~ 1/r. The
# reference to the outer row (g) makes PostgreSQL draw new words for every row.
def random_text(n: int) -> str:
    return (
        "(SELECT string_agg(w.word, ' ') FROM (SELECT floor(power("
        f"{VOCABULARY}, random()))::int AS r FROM generate_series(1, {n} + (g %% 2))) k "
        "JOIN bench_words w ON w.rank = k.r)"
    )


def seed(engine: Any, big_id: int, small_id: int, total_notes: int) -> None:
    words = vocabulary()
    others = USERS - 2
    rest = total_notes - BIG_NOTES - SMALL_NOTES
    execute(
        engine,
        ("CREATE UNLOGGED TABLE bench_words (rank int PRIMARY KEY, word text)", None),
        (
            "INSERT INTO bench_words SELECT r, (%(w)s::text[])[r] FROM generate_series(1, %(n)s) r",
            {"w": words, "n": VOCABULARY},
        ),
        # 198 more users (their password is the big user's; nobody logs in as them).
        (
            "INSERT INTO users (email, username, password_hash, created_at, updated_at) "
            "SELECT 'other' || g || '@example.com', 'other' || g, u.password_hash, now(), now() "
            "FROM generate_series(1, %(n)s) g, users u WHERE u.id = %(big)s",
            {"n": others, "big": big_id},
        ),
        (
            "INSERT INTO subjects (owner_id, name, created_at, updated_at) "
            "SELECT u.id, 'Subject ' || s, now(), now() FROM users u, "
            "generate_series(1, %(n)s) s",
            {"n": SUBJECTS_PER_USER},
        ),
        # The GIN indexes are built once, after the rows (as a restore would).
        ("DROP INDEX ix_notes_search", None),
        ("DROP INDEX ix_documents_search", None),
    )
    started = time.perf_counter()
    per_other = rest // others
    plan = [(big_id, BIG_NOTES), (small_id, SMALL_NOTES)]
    with engine.raw_connection() as raw:
        with raw.cursor() as cursor:
            cursor.execute("SELECT id FROM users WHERE username LIKE 'other%%' ORDER BY id")
            plan += [(row[0], per_other) for row in cursor.fetchall()]
        raw.rollback()
    for i in range(0, len(plan), 20):  # in batches: progress shows, no giant transaction
        statements = [
            (
                "INSERT INTO notes (owner_id, subject_id, title, body, excerpt, created_at, "
                "updated_at) SELECT %(owner)s, s.id, 'Lecture ' || g, "
                f"{random_text(NOTE_WORDS)}, 'Lecture ' || g, now(), now() "
                "FROM generate_series(1, %(n)s) g JOIN LATERAL (SELECT id FROM subjects "
                "WHERE owner_id = %(owner)s ORDER BY id OFFSET g %% 10 LIMIT 1) s ON true",
                {"owner": owner, "n": n},
            )
            for owner, n in plan[i : i + 20]
        ]
        execute(engine, *statements)
        print(f"  notes for {min(i + 20, len(plan))} of {len(plan)} users", flush=True)
    for owner, n in ((big_id, BIG_DOCS), (small_id, SMALL_DOCS)):
        execute(
            engine,
            (
                "INSERT INTO documents (owner_id, subject_id, title, filename, content_type, "
                "size, storage_key, status, text_status, extracted_text, created_at, "
                "updated_at) SELECT %(owner)s, s.id, 'Paper ' || g, 'paper-' || g || '.pdf', "
                "'application/pdf', 100000, 'documents/' || %(owner)s || '/' || g, 'ready', "
                f"'ready', {random_text(DOC_WORDS)}, now(), now() "
                "FROM generate_series(1, %(n)s) g JOIN LATERAL (SELECT id FROM subjects "
                "WHERE owner_id = %(owner)s ORDER BY id OFFSET g %% 10 LIMIT 1) s ON true",
                {"owner": owner, "n": n},
            ),
        )
    execute(
        engine,
        ("SET LOCAL maintenance_work_mem = '512MB'", None),
        ("CREATE INDEX ix_notes_search ON notes USING gin (owner_id, search_vector)", None),
        ("CREATE INDEX ix_documents_search ON documents USING gin (owner_id, search_vector)", None),
    )
    vacuum_analyze(engine)
    print(f"seeded and indexed in {time.perf_counter() - started:.0f} s")


def queries(words: list[str], n: int, seed: int = 11) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {
        "one word": [words[rng.randint(10, 1_000) - 1] for _ in range(n)],
        "three words": [
            " ".join(words[rng.randint(10, 3_000) - 1] for _ in range(3)) for _ in range(n)
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100, help="queries per kind and user")
    parser.add_argument("--notes", type=int, default=1_000_000, help="notes in all")
    parser.add_argument("--quick", action="store_true", help="100,000 notes, 30 queries")
    args = parser.parse_args()
    n_queries, total = (30, 100_000) if args.quick else (args.queries, args.notes)

    rule("bench.search")
    print(f"machine: {machine()}")
    with (
        tempfile.TemporaryDirectory(prefix="eleva-bench-search-") as media,
        scratch_database("eleva_bench_search") as url,
    ):
        app = make_app(production_env(url, media, BCRYPT_ROUNDS="4", LOG_LEVEL="WARNING"))
        engine = app_engine(app)
        try:
            run(app, engine, n_queries, total)
        finally:
            engine.dispose()
    return 0


def run(app: Any, engine: Any, n_queries: int, total: int) -> None:
    client = app.test_client()
    big_id, big = account(client, "big")
    small_id, small = account(client, "small")
    print(f"seeding {USERS} users, {total:,} notes, {BIG_DOCS + SMALL_DOCS:,} documents…")
    seed(engine, big_id, small_id, total)
    users = {"big": big, "small": small}
    words = vocabulary()
    kinds = queries(words, n_queries)

    def path(q: str) -> str:
        return f"/api/v1/search?q={q.replace(' ', '+')}"

    results: dict[str, dict[str, list[float]]] = {}
    matches: dict[str, list[int]] = {}
    for kind, qs in kinds.items():
        plan = [(name, path(q), users[name]) for q in qs for name in users]
        latencies(client, plan[:20])  # warm-up
        results[kind] = latencies(client, plan)
        matches[kind] = [
            json.loads(client.get(path(q), headers=big).headers["X-Pagination"])["total"]
            for q in qs
        ]

    print(f"\nGET /api/v1/search, {n_queries} queries per kind and user, in process:\n")
    print(f"{'':14}{'user':>7}{'p50 ms':>9}{'p90 ms':>9}{'matches (big) p50/max':>24}")
    ok = True
    for kind, by_user in results.items():
        for name, samples in by_user.items():
            counts = f"{percentile(matches[kind], 50):,.0f} / {max(matches[kind]):,}"
            print(
                f"{kind:14}{name:>7}{percentile(samples, 50):>9.2f}"
                f"{percentile(samples, 90):>9.2f}{counts if name == 'big' else '':>24}"
            )
    print()
    for kind, by_user in results.items():
        p50_big = percentile(by_user["big"], 50)
        ratio = p50_big / percentile(by_user["small"], 50)
        ok_kind = p50_big <= TARGET_MS and ratio < TARGET_RATIO
        ok = ok and ok_kind
        print(
            f"target {kind}: big p50 {p50_big:.2f} ms ≤ {TARGET_MS:g} ms and big ÷ small "
            f"{ratio:.2f} < {TARGET_RATIO:g} ({verdict(ok_kind)})"
        )

    worst = words[0]
    samples = latencies(client, [("worst", path(worst), big)] * 20)["worst"]
    total_worst = json.loads(client.get(path(worst), headers=big).headers["X-Pagination"])["total"]
    print(
        f"\nfor information, the most frequent word ({total_worst:,} matches for the big "
        f"user): p50 {percentile(samples, 50):.1f} ms"
    )

    counter = StatementCounter(engine)
    try:
        counter.reset()
        client.get(path(kinds["three words"][0]), headers=big)
        statements = list(counter.statements)
    finally:
        counter.close()
    print(f"statements per search request: {len(statements)}")
    setting = next(s for s, _ in statements if s.startswith("SET LOCAL"))
    search_sql, parameters = next((s, p) for s, p in statements if "ts_rank" in s)
    plan_text = explain_analyze(engine, setting, search_sql, parameters)
    print("\nEXPLAIN (ANALYZE, BUFFERS), one three-word search of the big user:\n")
    print(plan_text)
    seq_notes = re.search(r"Seq Scan on notes", plan_text) is not None
    print(f"\nno sequential scan of notes: {verdict(not seq_notes)}")
    print(f"\nall targets: {verdict(ok and not seq_notes)}")


def explain_analyze(engine: Any, setting: str, statement: str, parameters: Any) -> str:
    """The search's plan, in a transaction with the setting the app sends before it."""
    with engine.raw_connection() as raw:
        with raw.cursor() as cursor:
            cursor.execute(setting)
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            lines = [row[0] for row in cursor.fetchall()]
        raw.rollback()
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
