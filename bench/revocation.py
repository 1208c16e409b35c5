"""After a logout, does any worker still answer its access token? Checkouts side by side.

    python -m bench.revocation [CHECKOUT ...] [--trials 400] [--after 10] [--load]

Each trial logs in, warms every worker with the token, logs out, then sends ``--after``
requests at once on new connections: the contract wants none answered 200."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from bench.harness import (
    ROOT,
    Machine,
    Server,
    call,
    insert_subjects,
    login,
    production_env,
    register,
    rule,
    scratch_database,
    servers,
    web_concurrency,
)


def trial(pool: ThreadPoolExecutor, port: int, password: str, after: int) -> Counter[str]:
    """One login, logged out: the statuses of the warm-up and of the ``after`` requests."""
    token = login(port, "leaver", password)

    def me(_: int) -> int:
        return call(port, "GET", "/api/v1/users/me", token=token)[0]

    statuses = Counter(f"warm-up {s}" for s in pool.map(me, range(30)))
    assert call(port, "POST", "/api/v1/auth/logout", token=token)[0] == 204
    return statuses + Counter(f"after {s}" for s in pool.map(me, range(after)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", type=Path, nargs="*", default=[ROOT])
    parser.add_argument("--trials", type=int, default=400, help="logins, each logged out")
    parser.add_argument("--after", type=int, default=10, help="requests after each logout")
    parser.add_argument("--load", action="store_true", help="wrk on the subject list meanwhile")
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkouts]

    machine = Machine()
    statuses: dict[Path, Counter[str]] = {c: Counter() for c in checkouts}
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rev-")))
        urls = [
            stack.enter_context(scratch_database(f"eleva_bench_revocation_{i}", checkout))
            for i, checkout in enumerate(checkouts)
        ]
        running = stack.enter_context(servers())
        apps: dict[Path, tuple[Server, str]] = {}
        for i, (checkout, url) in enumerate(zip(checkouts, urls, strict=True)):
            server = Server(
                f"app{i}",
                log_dir,
                env=production_env(url, log_dir / "media"),
                checkout=checkout,
                workers=args.web_concurrency,
            )
            running.append(server)
            server.wait_ready()
            password = register(server.port, "leaver")[2]
            if args.load:
                user_id, token, _ = register(server.port, "busy")
                insert_subjects(url, user_id, 1000)
                load = subprocess.Popen(
                    [
                        "wrk",
                        "-t1",
                        "-c16",
                        "-d3600s",
                        "-H",
                        f"Authorization: Bearer {token}",
                        server.url("/api/v1/subjects/?page_size=20"),
                    ],
                    stdout=subprocess.DEVNULL,
                )
                stack.callback(load.wait)
                stack.callback(load.terminate)
            apps[checkout] = (server, password)
        with ThreadPoolExecutor(16) as pool:
            for _ in range(args.trials):
                for checkout, (server, password) in apps.items():  # alternating
                    statuses[checkout] += trial(pool, server.port, password, args.after)

    rule("bench.revocation")
    print(f"machine: {machine.describe()}")
    print(f"while running: {machine.activity()}")
    print(
        f"gunicorn as the Procfile runs it, WEB_CONCURRENCY={args.web_concurrency}; "
        f"{args.trials} trials per checkout, {args.after} requests after each logout "
        f"(16 threads); load: {'wrk -c16 on the subject list' if args.load else 'none'}\n"
    )
    for checkout in checkouts:
        got = statuses[checkout]
        print(
            f"  {checkout}: {got['after 200']} of {args.trials * args.after} requests with a "
            "logged-out token answered 200; all statuses: "
            + ", ".join(f"{k} ×{v}" for k, v in sorted(got.items()))
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
