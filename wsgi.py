"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask`` (via .flaskenv)."""

import sys

from config import ConfigError
from eleva import create_app

try:
    app = create_app()
except ConfigError as exc:
    # One clear line per problem instead of a traceback: this is an operator's mistake,
    # not a bug, and all of it is said at once.
    for problem in exc.problems:
        print(f"eleva: refusing to start: {problem}", file=sys.stderr)
    raise SystemExit(1) from None
