"""Users: own profile, privacy, password, deactivation, pictures, public profiles."""

from __future__ import annotations

from flask import Flask

from eleva.http.api import Api
from eleva.users.routes import blp


def register(_app: Flask, api: Api) -> None:
    api.register_blueprint(blp, url_prefix="/api/v1/users")
