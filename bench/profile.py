"""Where an endpoint's time goes: pyinstrument around a loop of test-client requests.

    python -m bench.profile [PATH] [-n 2000] [--subjects 1000] [--all]

In process, production configuration, a fresh PostgreSQL database (eleva_bench_profile,
dropped at the end) holding one user with ``--subjects`` subjects. PATH (default
/api/v1/users/me) is requested as that user: 200 warm-up requests, then ``-n`` profiled
ones. Prints the in-process CPU time per request and pyinstrument's text report
(``--all`` shows library frames too).
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

from bench._common import (
    app_engine,
    make_app,
    production_env,
    rule,
    scratch_database,
    seed_user_with_subjects,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default="/api/v1/users/me")
    parser.add_argument("-n", type=int, default=2000, help="profiled requests")
    parser.add_argument("--subjects", type=int, default=1000, help="the user's subjects")
    parser.add_argument("--all", action="store_true", help="show library frames too")
    args = parser.parse_args()

    from pyinstrument import Profiler

    with (
        tempfile.TemporaryDirectory(prefix="eleva-bench-profile-") as media,
        scratch_database("eleva_bench_profile") as url,
    ):
        app = make_app(production_env(url, media, BCRYPT_ROUNDS="4", LOG_LEVEL="WARNING"))
        engine = app_engine(app)
        try:
            client = app.test_client()
            headers = seed_user_with_subjects(app, args.subjects)

            for _ in range(200):
                response = client.get(args.path, headers=headers)
            assert response.status_code < 400, (response.status_code, response.json)
            cpu = time.process_time()
            for _ in range(args.n):
                client.get(args.path, headers=headers)
            per_request = (time.process_time() - cpu) * 1000 / args.n

            profiler = Profiler(interval=0.0002)
            profiler.start()
            for _ in range(args.n):
                client.get(args.path, headers=headers)
            profiler.stop()
        finally:
            engine.dispose()

    rule(f"bench.profile GET {args.path}")
    print(f"{per_request:.3f} ms CPU per request, in process (test client), unprofiled\n")
    print(profiler.output_text(unicode=True, color=False, show_all=args.all))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
