"""Log records as text lines or JSON objects (``LOG_FORMAT``, JSON production's default),
with the request id. Nothing here adds a value the caller did not choose: no email,
password or token.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import request

# Where the app leaves, in the WSGI environ, what the server's access log needs: the
# request id (eleva.http.web), the URL rule that matched (eleva.http.metrics, None when
# none did) and the authenticated caller (eleva.http.auth).
REQUEST_ID_KEY = "eleva.request_id"
ROUTE_KEY = "eleva.route"
USER_ID_KEY = "eleva.user_id"

# A path no rule matched is logged without its long segments: a mangled signed URL
# (/documents/files/<token>/) must not put its token in the log.
_LONG_SEGMENT = re.compile(r"[^/]{24,}")


def logged_path(environ: dict[str, Any]) -> str:
    """The URL rule of this request (JSON's ``route``), or its path with long segments
    hidden when no rule matched."""
    route = environ.get(ROUTE_KEY)
    if route:
        return str(route)
    return redact_path(_path(environ))


def request_path(environ: dict[str, Any]) -> str:
    """The path of this request for a text line (ids are worth seeing there), but the
    URL rule where the path carries a secret (a signed URL's ``<token>``), and long
    segments hidden when no rule matched. Never the query string."""
    route = environ.get(ROUTE_KEY)
    if route is None:
        return redact_path(_path(environ))
    return str(route) if "token>" in route else _path(environ)


def _path(environ: dict[str, Any]) -> str:
    # PEP 3333 paths are latin-1 decoded bytes: show them as the UTF-8 they were.
    return str(environ.get("PATH_INFO", "")).encode("latin-1", "replace").decode("utf-8", "replace")


def redact_path(path: str) -> str:
    """A path (or URI) fit for a log: no query string, no long segment."""
    return _LONG_SEGMENT.sub("…", path.split("?", 1)[0])


class RequestLineFilter(logging.Filter):
    """werkzeug's development server (``flask run``) logs each request line as it came,
    a signed URL's token included: log it with :func:`redact_path`'s path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str) and " /" in args[0]:
            method, _, rest = args[0].partition(" ")
            path, _, protocol = rest.partition(" ")
            record.args = (f"{method} {redact_path(path)} {protocol}".rstrip(), *args[1:])
        return True


class RequestIdFilter(logging.Filter):
    """Put the current request id (or "-") on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = request.environ.get(REQUEST_ID_KEY, "-")
            except RuntimeError:  # outside a request or app context
                record.request_id = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a string in ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id if request_id not in (None, "-") else None,
        }
        # The record's own fields: a request's method, route, status, duration_ms, user_id;
        # a job's job, job_id, outcome, duration_ms, attempt.
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str, fmt: str = "text") -> None:
    """The app's handler: on the ``eleva`` logger as text; as JSON on the root logger,
    so that the libraries' records (RQ, SQLAlchemy, Flask-Limiter) are JSON lines too."""
    eleva = logging.getLogger("eleva")
    eleva.setLevel(level)
    root = logging.getLogger()
    handler = None
    for logger in (eleva, root):
        for existing in list(logger.handlers):
            if getattr(existing, "_eleva", False):
                logger.removeHandler(existing)
                handler = existing
    if handler is None:
        handler = logging.StreamHandler()
        handler._eleva = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        eleva.addHandler(handler)
    dev_server = logging.getLogger("werkzeug")
    if not any(isinstance(f, RequestLineFilter) for f in dev_server.filters):
        dev_server.addFilter(RequestLineFilter())
