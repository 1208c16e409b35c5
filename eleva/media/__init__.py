"""/media/<key>: stored objects served by the app when storage is the local disk."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, send_from_directory
from werkzeug.exceptions import NotFound

from eleva.data.storage import (
    EXTENSION_KEY,
    IMMUTABLE_CACHE,
    PUBLIC_PREFIXES,
    InvalidKey,
    LocalBackend,
)
from eleva.http.api import Api

blp = Blueprint("media", __name__)


@blp.get("/media/<path:key>")
def serve(key: str) -> Response:
    backend = current_app.extensions[EXTENSION_KEY]
    if not key.startswith(PUBLIC_PREFIXES):
        # Only pictures are public. Documents and exports are private: served only
        # through short-lived signed URLs, as attachments (eleva.documents), never as
        # public permanent links.
        raise NotFound()
    try:
        path = backend.path(key)
    except InvalidKey:
        raise NotFound() from None
    response = send_from_directory(backend.root, path.relative_to(backend.root), max_age=31536000)
    response.headers["Cache-Control"] = IMMUTABLE_CACHE
    return response


def register(app: Flask, _api: Api) -> None:
    # With S3 the objects are served by the bucket (or its CDN), not by the app.
    if isinstance(app.extensions[EXTENSION_KEY], LocalBackend):
        app.register_blueprint(blp)
