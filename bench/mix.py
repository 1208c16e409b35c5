"""An SPA's requests (reads and writes) next to the floor, alternating, at 16 and 64 connections.

    python -m bench.mix [--rounds 3] [--duration 8] [--connections 16,64] [--users 16]

Guard (issue 28): at 64 connections p99 ≤ 10 × p50 and no errors.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from itertools import count
from pathlib import Path

from bench.harness import (
    Machine,
    Server,
    alternate,
    analyze,
    floor,
    insert_notes,
    insert_subjects,
    lua,
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

SUBJECTS_PER_USER = 100
NOTE_SUBJECTS = 5  # of each user's subjects hold notes
NOTES_PER_SUBJECT = 40
# One user's 20 requests, in this order; users take turns.
SESSION = [
    "me", "subjects", "subject", "notes", "note",
    "me", "subjects", "subject", "notes", "note",
    "me", "subjects", "subject", "patch", "note",
    "me", "subjects", "notes", "note", "post",
]  # fmt: skip

LUA = """
local users = %(users)s
local session = %(session)s
local run, n = "", 0

function init(args) run = args[1] end

function request()
  n = n + 1
  local step = session[(n - 1) %% #session + 1]
  local user = users[math.floor((n - 1) / #session) %% #users + 1]
  local headers = {["Authorization"] = "Bearer " .. user.token}
  local subject = user.subjects[n %% #user.subjects + 1]
  if step == "me" then return wrk.format("GET", "/api/v1/users/me", headers)
  elseif step == "subjects" then return wrk.format("GET", "/api/v1/subjects/?page_size=20", headers)
  elseif step == "subject" then return wrk.format("GET", "/api/v1/subjects/" .. subject, headers)
  elseif step == "notes" then
    local with_notes = user.note_subjects[n %% #user.note_subjects + 1]
    return wrk.format("GET", "/api/v1/subjects/" .. with_notes .. "/notes?page_size=20", headers)
  elseif step == "note" then
    return wrk.format("GET", "/api/v1/notes/" .. user.notes[n %% #user.notes + 1], headers)
  end
  headers["Content-Type"] = "application/json"
  if step == "patch" then
    return wrk.format("PATCH", "/api/v1/subjects/" .. subject, headers,
      '{"description": "edited ' .. run .. ' ' .. n .. '"}')
  end
  return wrk.format("POST", "/api/v1/subjects/", headers, '{"name": "Mix ' .. run .. ' ' .. n .. '"}')
end
"""


def seed(server: Server, database_url: str, users: int) -> list[dict]:
    """``users`` accounts through the API, their subjects and notes through SQL."""
    with ThreadPoolExecutor(4) as pool:
        accounts = list(pool.map(lambda i: register(server.port, f"mix{i}"), range(users)))
    seeded = []
    for user_id, token, _ in accounts:
        subjects = insert_subjects(database_url, user_id, SUBJECTS_PER_USER)
        notes = []
        for subject in subjects[:NOTE_SUBJECTS]:
            notes += insert_notes(database_url, user_id, subject, NOTES_PER_SUBJECT)
        seeded.append(
            {
                "token": token,
                "subjects": subjects,
                "note_subjects": subjects[:NOTE_SUBJECTS],
                "notes": notes,
            }
        )
    analyze(database_url)
    return seeded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--web-concurrency", type=int, default=web_concurrency())
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("bench.mix needs wrk (apt-get install wrk)")
    levels = [int(c) for c in args.connections.split(",")]

    machine = Machine()
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-mix-")))
        url = stack.enter_context(scratch_database("eleva_bench_mix"))
        running = stack.enter_context(servers())
        bare = floor(log_dir, workers=args.web_concurrency)
        app = Server(
            "eleva",
            log_dir,
            env=production_env(url, log_dir / "media"),
            workers=args.web_concurrency,
        )
        running += [bare, app]
        bare.wait_ready("/")
        app.wait_ready()
        script = log_dir / "mix.lua"
        script.write_text(LUA % {"users": lua(seed(app, url, args.users)), "session": lua(SESSION)})
        runs = count()

        def run(case: tuple[str, int], seconds: float = args.duration):
            name, connections = case
            if name == "floor":
                return wrk(bare, "/", seconds, connections)
            return wrk(
                app, "/", seconds, connections, script=script, script_args=[f"r{next(runs)}"]
            )

        cases = [(name, c) for c in levels for name in ("floor", "mix")]
        for case in cases:
            run(case, 2)
        samples = alternate(cases, args.rounds, run)

    rule("bench.mix")
    print(f"machine: {machine.describe()}")
    print(f"while running: {machine.activity()}")
    print(
        f"gunicorn as the Procfile runs it, WEB_CONCURRENCY={args.web_concurrency}; wrk -t1, "
        f"{args.rounds} rounds × {args.duration:g} s per case, alternating; {args.users} users, "
        f"{SUBJECTS_PER_USER} subjects and {NOTE_SUBJECTS * NOTES_PER_SUBJECT} notes each\n"
        "per user, 20 requests: 4 GET /users/me, 4 GET /subjects/ (20 items), 3 GET "
        "/subjects/<id>, 3 GET /subjects/<id>/notes (20 items), 4 GET /notes/<id>, "
        "1 PATCH /subjects/<id>, 1 POST /subjects/\n"
    )
    rows = []
    for case in cases:
        got = samples[case]
        p50, p99 = median([s.p50 for s in got]), median([s.p99 for s in got])
        rows.append(
            [
                case[0],
                case[1],
                median([s.rps for s in got]),
                p50,
                p99,
                p99 / p50,
                median([s.cpu_ms for s in got]),
                sum(s.errors for s in got),
                " ".join(f"{s.p50:.1f}/{s.p99:.0f}" for s in got),
            ]
        )
    table(
        [
            "",
            "conns",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99/p50",
            "CPU ms/req",
            "errors",
            "p50/p99 by round",
        ],
        rows,
    )
    top = samples[("mix", max(levels))]
    p50, p99 = median([s.p50 for s in top]), median([s.p99 for s in top])
    errors = sum(s.errors for s in top)
    ok = p99 <= 10 * p50 and errors == 0
    print(
        f"\nguard at {max(levels)} connections: p99 {p99:.1f} ms ≤ 10 × p50 {p50:.1f} ms and "
        f"no errors ({errors}): {'met' if ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
