"""Eléva's REST API: the application factory.

``create_app`` is a list of steps: configuration → extensions → blueprints → error
handlers → CLI. Extensions are bare instances in :mod:`eleva.extensions`; only here do
they meet an app.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from inspect import iscoroutinefunction
from pathlib import Path
from typing import Any

from flask import Flask

from config import Config, load_config
from eleva.api import SECURITY_SCHEMES
from eleva.database import init_engines
from eleva.extensions import api, db, jwt, limiter, migrate, storage
from eleva.web import JSONProvider

__all__ = ["create_app"]


class App(Flask):
    """Flask, asking once per view or hook function whether it is a coroutine, and
    encoding JSON with orjson (``eleva.web.JSONProvider``).

    Flask's ``ensure_sync`` inspects every hook and view function on every request
    (``inspect.iscoroutinefunction``, ~10 calls a request here); Eléva has no async
    views, and a function's nature does not change, so the answer is kept.
    """

    json_provider_class = JSONProvider

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._coroutine_functions: dict[Any, bool] = {}

    def ensure_sync(self, func: Any) -> Any:
        # A bound method is made anew per call (MethodView): key on its function.
        key = getattr(func, "__func__", func)
        is_coroutine = self._coroutine_functions.get(key)
        if is_coroutine is None:
            is_coroutine = self._coroutine_functions[key] = iscoroutinefunction(func)
        return self.async_to_sync(func) if is_coroutine else func


def create_app(config: Config | None = None, overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from ``config`` (default: the class ``ELEVA_ENV`` names)."""
    config = config or load_config()
    config.validate()
    app = App(__name__, static_folder=None)
    app.config.from_object(config)
    app.config.update(overrides or {})

    from eleva.web import configure_logging, init_http

    configure_logging(app.config["LOG_LEVEL"])
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    init_http(app)
    warm_up(app)
    return app


def register_extensions(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        # The default database lives in instance/, which a fresh clone does not have.
        with contextlib.suppress(OSError):  # an unusable path is reported by the database
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        init_engines(db.engines.values())
    from eleva.services.db import close_read_connections

    app.teardown_appcontext(close_read_connections)
    # Batch mode lets the same migration alter tables on SQLite (which has no ALTER).
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
    )
    jwt.init_app(app)
    from eleva.security import register_jwt_callbacks

    register_jwt_callbacks(jwt)
    limiter.init_app(app)
    storage.init_app(app)
    app.config.setdefault("API_SPEC_OPTIONS", {})
    app.config["API_SPEC_OPTIONS"] = {
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "info": {
            "description": "Eléva's REST API: accounts, profiles and study subjects. "
            "Every error is JSON: {code, status, message, errors?}.",
        },
        **app.config["API_SPEC_OPTIONS"],
    }
    api.init_app(app)


def register_blueprints(app: Flask) -> None:
    from eleva.auth.routes import blp as auth_blp
    from eleva.health import blp as health_blp
    from eleva.subjects.routes import blp as subjects_blp
    from eleva.users.routes import blp as users_blp

    api.register_blueprint(health_blp)
    api.register_blueprint(auth_blp, url_prefix="/api/v1/auth")
    api.register_blueprint(users_blp, url_prefix="/api/v1/users")
    api.register_blueprint(subjects_blp, url_prefix="/api/v1/subjects")


def register_error_handlers(app: Flask) -> None:
    from eleva.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from eleva.commands import register_commands as register

    register(app)


def warm_up(app: Flask) -> None:
    """Work that would otherwise land on some user's first request."""
    from eleva.security import _dummy_hash, common_passwords

    common_passwords()
    _dummy_hash(app.config["BCRYPT_ROUNDS"])
