"""Login latency against bcrypt itself, and the timing of the two failed logins.

    python -m bench.login [--runs 15] [--rounds 12] [--quick] [--redis URL]

In process, with the Flask test client, in the production configuration against a fresh
PostgreSQL database (eleva_bench_login, dropped at the end). Four measurements,
interleaved so that drift on a shared machine hits them alike:

- a successful POST /api/v1/auth/login;
- a bare ``bcrypt.checkpw`` at the same cost (BCRYPT_ROUNDS, default 12): the floor;
- a failed login for an unknown login;
- a failed login for a known login with a wrong password.

A successful login should cost little more than its bcrypt check (target ≤ 1.10×), and
the two failures should take about the same time (0.8–1.25), so that timing does not
tell an attacker which logins exist.

Then POST /api/v1/auth/password/forgot for a known, an unknown and a deactivated email,
as deployed: with REDIS_URL (``--redis``, default Redis db 9), so the lookup and the email
are a job for the worker, not the request. Each sample is a batch of 20 requests. Known
÷ unknown and deactivated ÷ unknown should both be within 0.8–1.25. The queued jobs are
deleted at the end.
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
import tempfile
import time
from collections.abc import Callable

import bcrypt

from bench._common import (
    app_engine,
    machine,
    make_app,
    median,
    production_env,
    rule,
    scratch_database,
    verdict,
)

PASSWORD = "a long bench passphrase"
TARGET_RATIO = 1.10
FAIL_RANGE = (0.8, 1.25)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds of one call (CPU is steadier on a busy machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="samples of each (median)")
    parser.add_argument("--rounds", type=int, default=12, help="BCRYPT_ROUNDS (default 12)")
    parser.add_argument("--quick", action="store_true", help="5 samples of each")
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/9", help="REDIS_URL of the job queue"
    )
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs

    rule("bench.login")
    print(f"machine: {machine()}")
    with (
        tempfile.TemporaryDirectory(prefix="eleva-bench-login-") as media,
        scratch_database("eleva_bench_login") as url,
    ):
        env = production_env(
            url, media, BCRYPT_ROUNDS=str(args.rounds), LOG_LEVEL="WARNING", REDIS_URL=args.redis
        )
        app = make_app(env)
        try:
            samples = measure(app, args.rounds, runs)
            forgot = measure_forgot(app, runs)
        finally:
            with app.app_context():
                from eleva.data import jobs

                jobs.queue().delete(delete_jobs=True)
            app_engine(app).dispose()
    report(samples, args.rounds, runs)
    report_forgot(forgot, runs)
    return 0


def measure(app, rounds: int, runs: int) -> dict[str, list[tuple[float, float]]]:
    client = app.test_client()
    user = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=user).status_code == 201

    def login(login: str, password: str, expect: int) -> Callable[[], None]:
        def call() -> None:
            response = client.post(
                "/api/v1/auth/login", json={"login": login, "password": password}
            )
            assert response.status_code == expect, (response.status_code, response.json)

        return call

    # The floor: bcrypt at the same cost, on an input as long as the app's pre-hash.
    secret = b"x" * 44
    hashed = bcrypt.hashpw(secret, bcrypt.gensalt(rounds))

    def checkpw() -> None:
        assert bcrypt.checkpw(secret, hashed)

    cases = {
        "login": login("ada", PASSWORD, 200),
        "checkpw": checkpw,
        "unknown": login("nobody", PASSWORD, 401),
        "wrong": login("ada", "not the password at all", 401),
    }
    for fn in cases.values():  # warm-up: connections, code paths, the dummy hash
        fn()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(cases[name]))
    return samples


FORGOT_BATCH = 20


def measure_forgot(app, runs: int) -> dict[str, list[tuple[float, float]]]:
    from sqlalchemy import update

    from eleva.data.db import db
    from eleva.data.models import User

    client = app.test_client()
    gone = {"email": "gone@example.com", "username": "gone", "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=gone).status_code == 201
    with app.app_context():
        db.session.execute(update(User).where(User.username == "gone").values(is_active=False))
        db.session.commit()

    def forgot(email: str) -> Callable[[], None]:
        def call() -> None:
            for _ in range(FORGOT_BATCH):
                response = client.post("/api/v1/auth/password/forgot", json={"email": email})
                assert response.status_code == 202, (response.status_code, response.json)

        return call

    cases = {
        "known": forgot("ada@example.com"),
        "unknown": forgot("nobody@example.com"),
        "gone": forgot("gone@example.com"),
    }
    for fn in cases.values():
        fn()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(cases[name]))
    return samples


def report_forgot(samples: dict[str, list[tuple[float, float]]], runs: int) -> None:
    labels = {
        "known": "forgot, active account's email (202)",
        "unknown": "forgot, unknown email (202)",
        "gone": "forgot, deactivated account's email (202)",
    }
    per = {n: median([w for w, _ in v]) / FORGOT_BATCH for n, v in samples.items()}
    per_cpu = {n: median([c for _, c in v]) / FORGOT_BATCH for n, v in samples.items()}
    print(
        f"\nPOST /auth/password/forgot: {runs} batches of {FORGOT_BATCH}, interleaved; per request\n"
    )
    print(f"{'':<42}{'wall ms':>9}{'CPU ms':>9}")
    for name, label in labels.items():
        print(f"{label:<42}{per[name]:>9.2f}{per_cpu[name]:>9.2f}")
    low, high = FAIL_RANGE
    print("\ntargets (wall clock; CPU time in brackets):")
    for name in ("known", "gone"):
        ratio, ratio_cpu = per[name] / per["unknown"], per_cpu[name] / per_cpu["unknown"]
        print(
            f"  {name} ÷ unknown email within {low}–{high}: {ratio:.3f} [{ratio_cpu:.3f}] "
            f"({verdict(low <= ratio <= high)})"
        )


def report(samples: dict[str, list[tuple[float, float]]], rounds: int, runs: int) -> None:
    labels = {
        "login": "POST /auth/login, right password (200)",
        "checkpw": f"bcrypt.checkpw, cost {rounds}",
        "unknown": "POST /auth/login, unknown login (401)",
        "wrong": "POST /auth/login, wrong password (401)",
    }
    wall = {name: median([w for w, _ in values]) for name, values in samples.items()}
    cpu = {name: median([c for _, c in values]) for name, values in samples.items()}
    print(f"\n{runs} samples each, interleaved; medians, and the wall-clock range\n")
    print(f"{'':<42}{'wall ms':>9}{'CPU ms':>9}{'min':>9}{'max':>9}")
    for name, label in labels.items():
        walls = [w for w, _ in samples[name]]
        print(f"{label:<42}{wall[name]:>9.1f}{cpu[name]:>9.1f}{min(walls):>9.1f}{max(walls):>9.1f}")
    low, high = FAIL_RANGE
    print("\ntargets (wall clock; CPU time in brackets):")
    ratio, ratio_cpu = wall["login"] / wall["checkpw"], cpu["login"] / cpu["checkpw"]
    print(
        f"  login ÷ bcrypt ≤ {TARGET_RATIO:.2f}: {ratio:.3f} [{ratio_cpu:.3f}] "
        f"({verdict(ratio <= TARGET_RATIO)})"
    )
    fail, fail_cpu = wall["unknown"] / wall["wrong"], cpu["unknown"] / cpu["wrong"]
    print(
        f"  unknown login ÷ wrong password within {low}–{high}: {fail:.3f} [{fail_cpu:.3f}] "
        f"({verdict(low <= fail <= high)})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
