"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask`` (via .flaskenv)."""

import sys

from config import ConfigError
from eleva import create_app

try:
    app = create_app()
except ConfigError as exc:
    # One clear line instead of a traceback: this is an operator's mistake, not a bug.
    print(f"eleva: refusing to start: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
