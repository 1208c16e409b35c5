"""gunicorn's logger for Eléva (``logger_class`` in gunicorn.conf.py): its access log
never holds a token, and follows ``LOG_FORMAT``.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

from config import log_format
from eleva.http.logs import (
    REQUEST_ID_KEY,
    USER_ID_KEY,
    JsonFormatter,
    logged_path,
    redact_path,
    request_path,
)

# Atoms an access_log_format could use that hold the raw path, query or credentials.
_RAW_ATOMS = (
    "{raw_uri}e",
    "{path_info}e",
    "{query_string}e",
    "{request_uri}e",
    "{authorization}i",
    "{cookie}i",
    "{x-csrf-token}i",
)


class Logger(glogging.Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # Read here, in the master, before the app exists (config.py's own reading).
        self.json = log_format(os.environ) == "json"
        if self.json:
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().error(msg, *_redacted(args), **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        # gunicorn's workers log "Error handling request %s" with the request's URI.
        super().exception(msg, *_redacted(args), **kwargs)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        # Local storage's signed URLs carry their token in the path
        # (/api/v1/documents/files/<token>): for those the line has the URL rule the app
        # matched (eleva.http.metrics leaves it in the environ), for a path no rule matched
        # the path without its long segments, and never the query string.
        atoms = super().atoms(resp, req, environ, request_time)
        path = request_path(environ)
        atoms["U"] = path
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["q"] = ""
        for name in _RAW_ATOMS:
            atoms.pop(name, None)
        return atoms

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        # With LOG_FORMAT=json every line gunicorn writes is a JSON object, the access line
        # with the contract's keys (route: the URL rule, always).
        if not self.json:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        status = resp.status
        status = int(status.split(None, 1)[0]) if isinstance(status, str) else status
        method = environ.get("REQUEST_METHOD", "-")
        route = logged_path(environ)
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
        }
        user_id = environ.get(USER_ID_KEY)
        if user_id is not None:
            fields["user_id"] = user_id
        self.access_log.info(
            "%s %s %s",
            method,
            route,
            status,
            extra={"fields": fields, "request_id": environ.get(REQUEST_ID_KEY)},
        )


def _redacted(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(redact_path(a) if isinstance(a, str) and a.startswith("/") else a for a in args)
