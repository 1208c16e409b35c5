"""Each HTTP request counted and timed for ``/metrics`` (eleva.data.metrics), by its
URL rule: the route, never the raw path (a path per note id, or per 404 a scanner
invents, would be a new series each)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from eleva.data.metrics import HTTP_DURATION, HTTP_REQUESTS
from eleva.http.logs import ROUTE_KEY

# What a client may put in a method or path never becomes a label value of its own.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
StartResponse = Callable[..., Any]


class RequestMetrics:
    """WSGI middleware: count and time each answer; leave the URL rule that matched in
    the environ (``ROUTE_KEY``) for the server's access log."""

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.wsgi_app = wsgi_app
        # Each label set's child, kept: prometheus_client's labels() checks and locks on
        # every call. Bounded: routes, methods and statuses are few.
        self._counts: dict[tuple[str, str, str], Any] = {}
        self._timings: dict[tuple[str, str], Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        started = time.perf_counter()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # Flask's request object, which routing gave its URL rule (None: no route).
            request = environ.get("werkzeug.request")
            rule = getattr(request, "url_rule", None)
            route = environ[ROUTE_KEY] = rule.rule if rule is not None else None
            method = environ.get("REQUEST_METHOD", "")
            method = method if method in METHODS else "other"
            label = route or UNMATCHED
            key = (method, label, status[:3])
            count = self._counts.get(key)
            if count is None:
                count = self._counts[key] = HTTP_REQUESTS.labels(*key)
            timing = self._timings.get(key[:2])
            if timing is None:
                timing = self._timings[key[:2]] = HTTP_DURATION.labels(method, label)
            count.inc()
            timing.observe(time.perf_counter() - started)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def init_app(app: Flask) -> None:
    app.wsgi_app = RequestMetrics(app.wsgi_app)  # type: ignore[method-assign]  # Flask's documented way
