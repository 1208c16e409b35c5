"""Auth: registration, login, token rotation, logout."""

from __future__ import annotations

from flask import Flask

from eleva.auth.routes import blp
from eleva.http.api import Api


def register(_app: Flask, api: Api) -> None:
    api.register_blueprint(blp, url_prefix="/api/v1/auth")
