"""Notes: Markdown notes in the caller's own subjects."""

from __future__ import annotations

from flask import Flask

from eleva.http.api import Api
from eleva.notes.routes import blp


def register(_app: Flask, api: Api) -> None:
    # Two prefixes (subjects/<id>/notes and notes/<id>): the blueprint's routes say which.
    api.register_blueprint(blp, url_prefix="/api/v1")
