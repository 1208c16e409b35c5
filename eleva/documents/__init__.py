"""Documents: a subject's files (uploads, direct uploads, downloads)."""

from __future__ import annotations

from flask import Flask

from eleva.documents.routes import blp
from eleva.http.api import Api


def register(_app: Flask, api: Api) -> None:
    api.register_blueprint(blp, url_prefix="/api/v1")
