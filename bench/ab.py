"""Worker CPU per request of two checkouts side by side, next to the floor, alternating.

    python -m bench.ab BEFORE [AFTER] [--rounds 5] [--duration 5] [--connections 16]

Each checkout runs on its own scratch database, migrated by its own `flask db upgrade`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.harness import (
    ROOT,
    Machine,
    Server,
    alternate,
    analyze,
    call,
    dsn,
    floor,
    insert_subjects,
    median,
    production_env,
    register,
    rule,
    scratch_database,
    servers,
    table,
    web_concurrency,
    wrk,
)

PATHS = {"me": "/api/v1/users/me", "list": "/api/v1/subjects/?page_size=20"}
GUARD = 1.30  # issue 28: after at most +30 % of worker CPU per request over before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout, e.g. a git worktree")
    parser.add_argument("after", type=Path, nargs="?", default=ROOT, help="default: this one")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--subjects", type=int, default=1000, help="the user's subjects")
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    for key in ("before", "after"):
        parser.add_argument(
            f"--{key}-args",
            default="",
            metavar="ARGS",
            help=f"gunicorn settings on top of {key}'s gunicorn.conf.py (default: none)",
        )
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    for checkout in checkouts.values():
        if not (checkout / "wsgi.py").is_file():
            parser.error(f"{checkout} is not a checkout of Eléva (no wsgi.py)")
    if shutil.which("wrk") is None:
        parser.error("bench.ab needs wrk (apt-get install wrk)")

    machine = Machine()
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ab-")))
        urls = {
            key: stack.enter_context(scratch_database(f"eleva_bench_ab_{key}", checkout))
            for key, checkout in checkouts.items()
        }
        running = stack.enter_context(servers())
        floor_env = {"FLOOR_DATABASE_URL": dsn(urls["after"])}
        bare = floor(log_dir, workers=args.web_concurrency, env=floor_env)
        running.append(bare)
        apps: dict[str, Server] = {}
        for key, checkout in checkouts.items():
            env = production_env(urls[key], log_dir / f"media-{key}")
            extra = shlex.split(getattr(args, f"{key}_args"))
            apps[key] = Server(
                key, log_dir, env=env, checkout=checkout, args=extra, workers=args.web_concurrency
            )
            running.append(apps[key])
        bare.wait_ready("/")
        headers = {}
        for key, server in apps.items():
            server.wait_ready()
            user_id, token, _ = register(server.port, "bench")
            insert_subjects(urls[key], user_id, args.subjects)
            analyze(urls[key])
            status, items, answer = call(server.port, "GET", PATHS["list"], token=token)
            assert status == 200 and len(items) == 20, (key, status)
            assert json.loads(answer["X-Pagination"])["total"] == args.subjects
            headers[key] = {"Authorization": f"Bearer {token}"}

        targets = [("floor", "/"), ("floor", "/db")] + [
            (key, path) for key in apps for path in PATHS
        ]

        def run(target: tuple[str, str], seconds: float = args.duration):
            key, path = target
            server = bare if key == "floor" else apps[key]
            return wrk(server, PATHS.get(path, path), seconds, args.connections, headers.get(key))

        for target in targets:  # warm-up: pools, caches, code paths
            run(target, 2)
        samples = alternate(targets, args.rounds, run)

    rule(f"bench.ab: {checkouts['before']} → {checkouts['after']}")
    print(f"machine: {machine.describe()}")
    print(f"while running: {machine.activity()}")
    print(
        f"gunicorn as the Procfile runs it, WEB_CONCURRENCY={args.web_concurrency}; wrk -t1 "
        f"-c{args.connections}, {args.rounds} rounds × {args.duration:g} s, alternating; "
        f"user with {args.subjects} subjects"
    )
    for key in checkouts:
        if getattr(args, f"{key}_args"):
            print(f"{key}: gunicorn.conf.py + {getattr(args, f'{key}_args')}")
    print()
    cpu = {target: median([s.cpu_ms for s in samples[target]]) for target in targets}
    rows = []
    for target in targets:
        got = samples[target]
        rows.append(
            [
                f"{target[0]} {PATHS.get(target[1], target[1])}",
                cpu[target],
                median([s.rps for s in got]),
                median([s.p50 for s in got]),
                median([s.p99 for s in got]),
                sum(s.errors for s in got),
                " ".join(f"{s.cpu_ms:.3f}" for s in got),
            ]
        )
    table(["", "CPU ms/req", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req by round"], rows)
    print("\nafter ÷ before, worker CPU per request (guard: ≤ 1.30 on both paths):")
    for path in PATHS:
        before, after = samples[("before", path)], samples[("after", path)]
        ratio = cpu[("after", path)] / cpu[("before", path)]
        by_round = " ".join(
            f"{a.cpu_ms / b.cpu_ms:.2f}" for a, b in zip(after, before, strict=True)
        )
        verdict = "met" if ratio <= GUARD else "MISSED"
        print(f"  {PATHS[path]:34} {ratio:.2f} ({verdict}); by round {by_round}")
    # An exact check asks the database on every request: at least one round trip more
    # than a before that answered the caller from memory.
    trip = cpu[("floor", "/db")] - cpu[("floor", "/")]
    print(f"\none round trip (floor /db − floor /): {trip:.3f} ms of worker CPU per request;")
    print("before + one round trip ÷ before, the least an exact caller check can give:")
    for path in PATHS:
        bound = (cpu[("before", path)] + trip) / cpu[("before", path)]
        verdict = "within" if bound <= GUARD else "beyond"
        print(f"  {PATHS[path]:34} {bound:.2f} ({verdict} the guard's {GUARD:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
