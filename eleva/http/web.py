"""What every HTTP response gets: request id, access log line, security headers, CORS,
and the JSON encoder."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from random import getrandbits
from typing import Any

import orjson
from flask import Flask, Response, current_app
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from eleva.http.logs import REQUEST_ID_KEY, request_path

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

    # Outermost, so that what it adds is on every answer the app gives, errors included.
    app.wsgi_app = ResponseHeaders(  # type: ignore[method-assign]  # Flask's documented way
        app.wsgi_app,
        hsts=app.config["HSTS_ENABLED"],
        docs_paths=frozenset(
            rule.rule for rule in app.url_map.iter_rules() if rule.endpoint in DOCS_ENDPOINTS
        ),
    )


HSTS_HEADER = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
StartResponse = Callable[..., Any]


class ResponseHeaders:
    """WSGI middleware: the request id, the security headers, ``Vary: Origin`` and
    ``Cache-Control: no-store`` where they belong, and the app's debug line.

    Outermost, so that every answer of the app has them, errors included; added as
    tuples to the list the server receives.
    """

    def __init__(
        self, wsgi_app: Callable[..., Any], *, hsts: bool, docs_paths: frozenset[str]
    ) -> None:
        self.wsgi_app = wsgi_app
        self.static = [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ]
        if hsts:
            self.static.append(HSTS_HEADER)
        self.docs_paths = docs_paths

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else new_request_id()
        environ[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            path = environ.get("PATH_INFO", "")
            own = [
                ("X-Request-ID", request_id),
                *self.static,
                ("Content-Security-Policy", DOCS_CSP if path in self.docs_paths else JSON_CSP),
            ]
            replaced = _OWN_NAMES
            if "HTTP_AUTHORIZATION" in environ or path.startswith("/api/v1/auth"):
                own.append(("Cache-Control", "no-store"))
                replaced = _OWN_NAMES_NO_STORE
            # The API's CORS headers depend on the request's Origin, even when it sent
            # none or one not allowed: a cache must not serve one origin's answer to
            # another. Stored files (/media/) answer every origin the same.
            add_vary = not path.startswith("/media/")
            kept = []
            for name, value in headers:
                lower = name.lower()
                if lower in replaced:
                    continue
                if lower == "vary" and add_vary:
                    add_vary = False
                    if "origin" not in value.lower():
                        value = f"{value}, Origin"
                kept.append((name, value))
            if add_vary:
                own.append(("Vary", "Origin"))
            kept += own
            if log.isEnabledFor(logging.DEBUG):
                # Not a signed URL's token (eleva.http.logs.request_path).
                log.debug(
                    "%s %s %s %.1fms",
                    environ.get("REQUEST_METHOD"),
                    request_path(environ),
                    status.split(" ", 1)[0],
                    (time.perf_counter() - started) * 1000,
                    extra={"request_id": request_id},
                )
            return start_response(status, kept, exc_info)

        return self.wsgi_app(environ, start)


_OWN_NAMES = frozenset({"x-request-id", "content-security-policy"})
_OWN_NAMES_NO_STORE = _OWN_NAMES | {"cache-control"}


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, encoding responses with orjson; the output is Flask's (keys
    sorted, compact, datetimes and dataclasses through Flask's ``default``). What orjson
    would encode its own way or refuses goes to ``json.dumps`` (tests/test_json.py)."""

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
