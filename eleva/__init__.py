"""Eléva's REST API: the application factory.

``create_app`` is a list of steps: configuration → data → HTTP → domains → CLI. The
layers, one way down, are drawn in docs/architecture.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate

from config import Config, load_config
from eleva import (
    auth,
    commands,
    documents,
    health,
    media,
    notes,
    search,
    study,
    subjects,
    users,
)
from eleva.core import passwords
from eleva.data import counters, jobs, mail, metrics, migrations
from eleva.data.db import db, init_engines
from eleva.data.storage import storage
from eleva.http import auth as http_auth
from eleva.http import errors, errors_report, logs, web
from eleva.http import metrics as http_metrics
from eleva.http.api import SECURITY_SCHEMES, api
from eleva.http.ratelimit import limiter

__all__ = ["create_app"]

# Each registers its blueprint: a new domain is one more name here.
DOMAINS = (health, auth, users, subjects, notes, documents, study, search, media)


def create_app(config: Config | None = None, overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from ``config`` (default: the class ``ELEVA_ENV`` names)."""
    config = config or load_config()
    config.validate()
    app = web.App(__name__, static_folder=None)
    app.config.from_object(config)
    app.config.update(overrides or {})

    logs.configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    errors_report.init_app(app)  # first: errors of the steps below are reported too
    init_data(app)
    init_http(app)
    for domain in DOMAINS:
        domain.register(app, api)
    errors.init_app(app)  # after the Api: ours replace its HTTPException handler
    http_metrics.init_app(app)  # inside the headers' middleware: sees the request id
    web.init_http(app)  # headers and CORS: after every other response hook
    commands.register_commands(app)
    # Work that would otherwise land on some user's first request.
    passwords.warm_up(app.config["BCRYPT_ROUNDS"])
    return app


def init_data(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        # The default database lives in instance/, which a fresh clone does not have.
        with contextlib.suppress(OSError):  # an unusable path is reported by the database
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        init_engines(
            db.engines.values(),
            statement_timeout_ms=app.config["DATABASE_STATEMENT_TIMEOUT_MS"],
            lock_timeout_ms=app.config["DATABASE_LOCK_TIMEOUT_MS"],
        )
        metrics.watch_pools(db.engines.values())
    # Batch mode lets the same migration alter tables on SQLite (which has no ALTER).
    Migrate(app, db, directory=str(migrations.MIGRATIONS), render_as_batch=True)
    migrations.history()  # read once, at start, for the readiness check
    storage.init_app(app)
    mail.init_app(app)
    jobs.init_app(app)
    counters.init_app(app)


def init_http(app: Flask) -> None:
    # Routing never redirects: werkzeug answers a URL missing a rule's trailing slash, or
    # with doubled slashes, with a 308 whose body is HTML, which Flask sends as it is.
    # Before any rule is added (each reads these when it is bound): /api/v1/subjects is
    # /api/v1/subjects/, and a doubled slash is no route (a JSON 404).
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    http_auth.init_app(app)
    limiter.init_app(app)
    app.config["API_SPEC_OPTIONS"] = {
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "info": {
            "description": "Eléva's REST API: accounts, profiles, study subjects, notes, "
            "documents and flashcards scheduled by FSRS. "
            "Every error is JSON: {code, status, message, errors?}.",
        },
        **app.config.get("API_SPEC_OPTIONS", {}),
    }
    api.init_app(app)
