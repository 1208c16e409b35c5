"""Counters for limits that belong to no route (Flask-Limiter counts the routes'): in the
same store, ``RATELIMIT_STORAGE_URI``, through the ``limits`` library Flask-Limiter is
built on, so every process of the web and the worker shares them. Off with
``RATELIMIT_ENABLED`` false.
"""

from __future__ import annotations

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

EXTENSION_KEY = "eleva.counters"


def init_app(app: Flask) -> None:
    limiter = None
    if app.config["RATELIMIT_ENABLED"]:
        store = storage_from_string(
            app.config["RATELIMIT_STORAGE_URI"], **app.config["RATELIMIT_STORAGE_OPTIONS"]
        )
        limiter = FixedWindowRateLimiter(store)
    app.extensions[EXTENSION_KEY] = limiter


def hit(limit: str, *identifiers: str) -> bool:
    """Count one more of ``identifiers``; False, and not counted, once ``limit`` (a
    limits string, e.g. "5 per hour") is reached. Always True with limits off."""
    limiter: FixedWindowRateLimiter | None = current_app.extensions.get(EXTENSION_KEY)
    if limiter is None:
        return True
    return bool(limiter.hit(parse(limit), "eleva", *identifiers))
