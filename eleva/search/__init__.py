"""Search: one query over the caller's subjects, notes and documents."""

from __future__ import annotations

from flask import Flask

from eleva.http.api import Api
from eleva.search.routes import blp


def register(_app: Flask, api: Api) -> None:
    api.register_blueprint(blp, url_prefix="/api/v1/search")
