"""Errors to Sentry (``SENTRY_DSN``, optional), without personal data.

An unexpected error of a request or of a job arrives with the request id as a tag; what
could carry a person's data or a secret never leaves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, has_request_context, request

from eleva.http.logs import REQUEST_ID_KEY, ROUTE_KEY

# Request headers that say nothing about who sent the request or what they hold.
SAFE_HEADERS = frozenset({"accept", "content-length", "content-type", "host", "user-agent"})


def init_app(app: Flask) -> None:
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    # An error logged at ERROR (eleva.http.errors, eleva.data.jobs) becomes an event through
    # sentry-sdk's logging integration.
    sentry_sdk.init(
        dsn=dsn,
        environment=app.config["ELEVA_ENV"],
        integrations=[
            # The URL rule names the transaction: a signed URL's token stays out.
            FlaskIntegration(transaction_style="url"),
            SqlalchemyIntegration(),
            RqIntegration(),
        ],
        # sentry-sdk's successor of send_default_pii (which it deprecates): no user, cookie,
        # body, query string, SQL or job data, no local variables, only harmless headers.
        # scrub() then removes whatever an integration still adds (the path's own values,
        # job arguments, the database's detail lines).
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "allowlist", "terms": sorted(SAFE_HEADERS)}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "queues": False,  # job arguments: ids and addresses
            "stack_frame_variables": False,  # a view's locals hold passwords and addresses
        },
        before_send=scrub,
        before_breadcrumb=_scrub_breadcrumb,
    )


def scrub(event: Any, _hint: Any) -> Any:
    """Leave in ``event`` only what identifies the fault, never the person."""
    event.pop("user", None)
    http = event.get("request")
    if isinstance(http, dict):
        for key in ("data", "cookies", "query_string", "env"):
            http.pop(key, None)
        headers = http.get("headers")
        if isinstance(headers, dict):
            http["headers"] = {k: v for k, v in headers.items() if k.lower() in SAFE_HEADERS}
        if isinstance(http.get("url"), str):
            http["url"] = _url_without_values(http["url"])
    extra = event.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("rq-job"), dict):
        # A job's arguments are ids and addresses: the job's name and id are enough.
        extra["rq-job"] = {
            key: value
            for key, value in extra["rq-job"].items()
            if key in ("job_id", "func", "description")
        }
    for exception in (event.get("exception") or {}).get("values") or []:
        # A database error's further lines quote the row it refused ("DETAIL: Key
        # (email)=(…)", "Failing row contains (…)"): its first line says what failed.
        if isinstance(exception.get("value"), str):
            exception["value"] = exception["value"].split("\n", 1)[0]
    if has_request_context():
        request_id = request.environ.get(REQUEST_ID_KEY)
        if request_id:
            event.setdefault("tags", {})["request_id"] = request_id
    return event


def _url_without_values(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path
    if has_request_context():
        rule = request.url_rule
        route = request.environ.get(ROUTE_KEY) or (rule.rule if rule is not None else None)
        path = route or "<unmatched>"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _scrub_breadcrumb(crumb: Any, _hint: Any) -> Any:
    if crumb.get("category") in ("query", "redis"):
        crumb.pop("data", None)  # statements' parameters, Redis keys' values
    return crumb
