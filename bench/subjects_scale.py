"""Does listing subjects stay fast as a user's subjects grow?

    python -m bench.subjects_scale [--requests 300] [--quick]

p50 latency of GET /api/v1/subjects/?page_size=20 for a user with 100 subjects and for
one with 100,000, in process (Flask test client, production configuration) against a
fresh PostgreSQL database (eleva_bench_subjects, dropped at the end). Subjects are seeded
with INSERT … SELECT generate_series, then VACUUM ANALYZE. Target: the ratio < 2.

The list's one statement (the session check, the caller and the page together), exactly
as the app sends it (caught by bench._common.StatementCounter), is then run under
EXPLAIN (ANALYZE, BUFFERS) for the 100,000 case, with the app's own parameters and the
generic plan the app uses. For information, the last page (OFFSET 99,980) is timed too.
"""

# The path is fixed before the imports that follow it.
# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# `python bench/x.py` puts bench/ first on sys.path, where bench/http.py would shadow the
# standard library's `http`. Take bench/ off the path and put the project on it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import json
import re
import tempfile
import time
from typing import Any

import psycopg

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

PASSWORD = "a long bench passphrase"
SIZES = {"small": 100, "large": 100_000}
LIST = "/api/v1/subjects/?page_size=20"
TARGET_RATIO = 2.0


def account(client: Any, username: str) -> tuple[int, dict[str, str]]:
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    user = client.post("/api/v1/auth/register", json=body)
    assert user.status_code == 201, user.json
    tokens = client.post("/api/v1/auth/login", json={"login": username, "password": PASSWORD})
    return user.json["id"], {"Authorization": f"Bearer {tokens.json['access_token']}"}


def seed(engine: Any, owner_id: int, n: int) -> None:
    with engine.raw_connection() as raw:
        with raw.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO subjects (owner_id, name, description, color, is_archived,
                                      created_at, updated_at)
                SELECT %(owner)s, 'Subject ' || g, 'Notes and documents for subject ' || g,
                       '#3A7BD5', false, now() - g * interval '1 second',
                       now() - g * interval '1 second'
                FROM generate_series(1, %(n)s) AS g
                """,
                {"owner": owner_id, "n": n},
            )
        raw.commit()


def vacuum_analyze(engine: Any) -> None:
    with engine.raw_connection() as raw:
        raw.driver_connection.autocommit = True
        raw.driver_connection.execute("VACUUM ANALYZE")
        raw.driver_connection.autocommit = False


def latencies(client: Any, plan: list[tuple[str, str, dict[str, str]]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, path, headers in plan:
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        out.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return out


def explain(engine: Any, statement: str, parameters: Any, *, seqscan: bool = True) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of ``statement``'s generic plan: the plan the app's hot
    reads run with (eleva.data.fastread.GENERIC_PLANS), not one made for these values."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", statement)
    arguments = ", ".join(f"%({name})s" for name in names)
    with engine.raw_connection() as raw:
        with psycopg.ClientCursor(raw.driver_connection) as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            if not seqscan:
                cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"PREPARE eleva_explain AS {numbered}")
            try:
                cursor.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE eleva_explain({arguments})", parameters
                )
                lines = [row[0] for row in cursor.fetchall()]
            finally:
                cursor.execute("DEALLOCATE eleva_explain")
        raw.rollback()
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per user")
    parser.add_argument("--quick", action="store_true", help="100 requests per user")
    args = parser.parse_args()
    n = 100 if args.quick else args.requests

    rule("bench.subjects_scale")
    print(f"machine: {machine()}")
    with (
        tempfile.TemporaryDirectory(prefix="eleva-bench-subjects-") as media,
        scratch_database("eleva_bench_subjects") as url,
    ):
        env = production_env(url, media, BCRYPT_ROUNDS="4", LOG_LEVEL="WARNING")
        app = make_app(env)
        engine = app_engine(app)
        try:
            run(app, engine, n)
        finally:
            engine.dispose()
    return 0


def run(app: Any, engine: Any, n: int) -> None:
    client = app.test_client()
    headers = {}
    started = time.perf_counter()
    for name, size in SIZES.items():
        owner_id, headers[name] = account(client, name)
        seed(engine, owner_id, size)
    vacuum_analyze(engine)
    print(
        f"seeded {sum(SIZES.values()):,} subjects and analysed in {time.perf_counter() - started:.1f} s"
    )

    for name in SIZES:
        response = client.get(LIST, headers=headers[name])
        total = json.loads(response.headers["X-Pagination"])["total"]
        assert len(response.json) == 20 and total == SIZES[name], (len(response.json), total)

    # Warm-up, then alternate the two users so that drift hits both alike.
    latencies(client, [(k, LIST, headers[k]) for k in SIZES] * 20)
    samples = latencies(client, [(k, LIST, headers[k]) for k in SIZES] * n)
    last_page = f"{LIST}&page={SIZES['large'] // 20}"
    deep = latencies(client, [("last", last_page, headers["large"])] * max(20, n // 10))

    p50 = {k: percentile(v, 50) for k, v in samples.items()}
    print(f"\nGET {LIST}, {n} requests per user, in process:\n")
    print(f"{'subjects':>10}{'p50 ms':>9}{'p90 ms':>9}")
    for name, size in SIZES.items():
        print(f"{size:>10,}{p50[name]:>9.2f}{percentile(samples[name], 90):>9.2f}")
    print(
        f"{SIZES['large']:>10,}{percentile(deep['last'], 50):>9.2f}"
        f"{percentile(deep['last'], 90):>9.2f}   (last page: page={SIZES['large'] // 20})"
    )
    ratio = p50["large"] / p50["small"]
    print(
        f"\ntarget: p50 ratio 100,000 ÷ 100 < {TARGET_RATIO:g}: {ratio:.2f} "
        f"({verdict(ratio < TARGET_RATIO)})"
    )

    # The list query, exactly as the app sends it, for the large user.
    counter = StatementCounter(engine)
    try:
        client.get(LIST, headers=headers["large"])
        statements = list(counter.statements)
    finally:
        counter.close()
    list_statements = [(s, p) for s, p in statements if "FROM subjects" in s]
    print(f"\nthe request sent {len(statements)} statement(s); the list's:")
    for statement, parameters in list_statements:
        rule("EXPLAIN (ANALYZE, BUFFERS) EXECUTE, generic plan, 100,000 subjects")
        print(" ".join(statement.split()))
        print(f"parameters: {parameters}\n")
        print(explain(engine, statement, parameters))


if __name__ == "__main__":
    raise SystemExit(main())
