"""Study: flashcards in the caller's subjects, their reviews scheduled by FSRS, the
review queue and study statistics."""

from __future__ import annotations

from flask import Flask

from eleva.http.api import Api
from eleva.study.routes import blp


def register(_app: Flask, api: Api) -> None:
    # Three prefixes (subjects/<id>/cards, cards/<id>, reviews/…): the routes say which.
    api.register_blueprint(blp, url_prefix="/api/v1")
