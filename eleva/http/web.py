"""What every HTTP response gets: request id, access log line, security headers, CORS,
and the JSON encoder."""

from __future__ import annotations

import logging
import re
import time
from random import getrandbits
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger("eleva.request")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI's files are the app's own (/docs/assets/); its page starts with an inline script.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
DOCS_ENDPOINTS = {"api-docs.openapi_swagger_ui"}
MEDIA_PATHS = r"/media/.*"
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "X-CSRF-Token"]
CORS_EXPOSE_HEADERS = ["X-Pagination", "ETag", "Location", "Retry-After", "X-Request-ID"]


def new_request_id() -> str:
    # For correlation, not a secret: 128 random bits without a getrandom() system call
    # per request (the random module reseeds itself in each forked worker).
    return f"{getrandbits(128):032x}"


class RequestIdFilter(logging.Filter):
    """Put the current request id (or "-") on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = g.get("request_id", "-")
            except RuntimeError:  # outside a request or app context
                record.request_id = "-"
        return True


def configure_logging(level: str) -> None:
    logger = logging.getLogger("eleva")
    logger.setLevel(level)
    if not any(getattr(h, "_eleva", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._eleva = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
        logger.addHandler(handler)


class NoSessions(SessionInterface):
    """No cookie sessions: open_session returning None gives Flask's cheap NullSession."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        return None


def init_http(app: Flask) -> None:
    hops = app.config["TRUSTED_PROXY_COUNT"]
    if hops:
        # Believe X-Forwarded-* from exactly that many proxies, never the client's own.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )

    api_cors = {
        "origins": app.config["CORS_ORIGINS"],
        "supports_credentials": True,
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS,
        "max_age": 600,
        # No Origin header, no CORS headers (flask-cors would otherwise send them).
        "always_send": False,
    }
    # Stored files are public and cached for a year (immutable): the same headers for
    # every request, Origin or not, so that a cached copy fetched by an <img> also serves
    # a fetch() or a canvas. A wildcard, hence never with credentials.
    media_cors = {
        "origins": "*",
        "send_wildcard": True,
        "supports_credentials": False,
        "always_send": True,
        "methods": ["GET", "HEAD", "OPTIONS"],
    }
    # flask-cors tries the longest pattern first.
    CORS(app, resources={MEDIA_PATHS: media_cors, r"/.*": api_cors})
    # A token API has no cookie session: skip Flask's per-request cookie signer (and
    # never send a session cookie).
    app.session_interface = NoSessions()

    static_headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]
    if app.config["HSTS_ENABLED"]:
        static_headers.append(("Strict-Transport-Security", "max-age=63072000; includeSubDomains"))

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else new_request_id()

    @app.after_request
    def finish_response(response: Response) -> Response:
        req, ctx = request, g
        headers = response.headers
        request_id = ctx.get("request_id") or new_request_id()
        headers["X-Request-ID"] = request_id
        headers.extend(static_headers)
        headers["Content-Security-Policy"] = (
            DOCS_CSP if req.endpoint in DOCS_ENDPOINTS else JSON_CSP
        )
        if "Authorization" in req.headers or req.path.startswith("/api/v1/auth"):
            headers["Cache-Control"] = "no-store"
        if not req.path.startswith("/media/"):
            # The API's CORS headers depend on the request's Origin, even when it sent
            # none or one not allowed: a cache must not serve one origin's answer to another.
            # (On the header itself: response.vary parses and rebuilds it, ~10 % of a
            # small request's time in this function.)
            vary = headers.get("Vary")
            if vary is None:
                headers["Vary"] = "Origin"
            elif "origin" not in vary.lower():
                headers["Vary"] = f"{vary}, Origin"
        # The access log is the server's (gunicorn.conf.py, werkzeug under `flask run`):
        # the app's own line is for debugging, and costs nothing when off.
        if log.isEnabledFor(logging.DEBUG):
            started = ctx.get("started")
            duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
            log.debug(
                "%s %s %s %.1fms",
                req.method,
                req.path,
                response.status_code,
                duration_ms,
                extra={"request_id": request_id},
            )
        return response


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, encoding responses with orjson (~10× faster here).

    The output is Flask's: keys sorted, compact (indented in debug), datetimes and
    dataclasses through Flask's own ``default``. Whatever orjson would encode its own way
    or refuses (dict/str/int subclasses, non-string keys, integers beyond 64 bits, lone
    surrogates) goes to ``json.dumps``. tests/test_json.py compares both encoders.
    """

    OPTIONS = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_APPEND_NEWLINE
    )

    def response(self, *args: Any, **kwargs: Any) -> Any:
        if args and kwargs:
            raise TypeError("app.json.response() takes either args or kwargs, not both")
        obj = kwargs or (args[0] if len(args) == 1 else list(args) if args else None)
        options = self.OPTIONS
        if (self.compact is None and current_app.debug) or self.compact is False:
            options |= orjson.OPT_INDENT_2
        try:
            body = orjson.dumps(obj, default=self.default, option=options)
        except orjson.JSONEncodeError:
            return super().response(*args, **kwargs)
        return current_app.response_class(body, mimetype=self.mimetype)


class App(Flask):
    json_provider_class = JSONProvider
