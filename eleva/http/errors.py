"""The one place that turns any error into the contract's shape.

Every error the app answers — a domain error, an ``HTTPException`` (routing, 405, 413,
422 validation, 429 …), a database outage or an unexpected exception — leaves through
:func:`error_response` as ``{code, status, message, errors?}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
import redis
from flask import Flask, Response, jsonify
from limits.errors import StorageError as CounterStoreError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from eleva.core.errors import AppError

log = logging.getLogger("eleva.errors")


def error_response(
    code: int,
    message: str | None = None,
    *,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    status = HTTPStatus(code)
    payload: dict[str, Any] = {
        "code": code,
        "status": status.phrase,
        "message": message or status.description or status.phrase,
    }
    if errors:
        payload["errors"] = errors
    response = jsonify(payload)
    response.status_code = code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_app_error(error: AppError) -> Response:
    return error_response(error.status, error.message, errors=error.errors, headers=error.headers)


def _handle_http_exception(error: HTTPException) -> Response:
    if isinstance(error.response, Response):
        # Built in the error shape where it was raised (eleva.http.ratelimit's 429).
        return error.response
    code = error.code or 500
    data = getattr(error, "data", None) or {}  # set by flask-smorest/webargs abort()
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    if code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    message = data.get("message") or _default_message(code, error)
    errors = data.get("errors") or data.get("messages")
    if code >= 500:
        log.error("HTTP %s: %s", code, error.description)
    return error_response(code, message, errors=errors, headers=headers)


def _handle_database_unavailable(error: Exception) -> Response:
    # Connection refused, server gone, pool exhausted: the client may retry later.
    log.error("database unavailable: %s", type(error).__name__, exc_info=error)
    return error_response(
        503,
        "The service is temporarily unavailable. Try again shortly.",
        headers={"Retry-After": "5"},
    )


def _handle_counters_unavailable(error: Exception) -> Response:
    # Redis down or hung (bounded by the socket timeouts of RATELIMIT_STORAGE_OPTIONS): a
    # limited route fails closed rather than let unlimited guesses through.
    log.error("rate-limit counters unavailable: %r", getattr(error, "storage_error", error))
    return error_response(
        503,
        "The service is temporarily unavailable. Try again shortly.",
        headers={"Retry-After": "5"},
    )


def _handle_unexpected(error: Exception) -> Response:
    # The traceback goes to the log, never to the client.
    log.exception("unhandled exception", exc_info=error)
    return error_response(500, "An unexpected error occurred.")


def _default_message(code: int, error: HTTPException) -> str:
    if code == 429:  # Flask-Limiter puts the limit that was hit in the description
        return f"Too many requests ({error.description}). Retry later."
    return _MESSAGES.get(code) or error.description or HTTPStatus(code).phrase


_MESSAGES = {
    400: "The request could not be understood.",
    404: "Not found.",
    405: "Method not allowed on this resource.",
    412: "The resource changed since you read it (If-Match is stale). Read it again.",
    413: "The request body is too large.",
    422: "The request contains invalid data.",
}


def init_app(app: Flask) -> None:
    """Register after the flask-smorest Api so ours replace its HTTPException handler."""
    app.register_error_handler(AppError, _handle_app_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    # psycopg's own too: a statement run on the driver connection (a migration, a job).
    for exc in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    ):
        app.register_error_handler(exc, _handle_database_unavailable)
    for store_error in (CounterStoreError, redis.ConnectionError, redis.TimeoutError):
        app.register_error_handler(store_error, _handle_counters_unavailable)
    app.register_error_handler(Exception, _handle_unexpected)
