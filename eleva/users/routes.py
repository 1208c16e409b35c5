"""/api/v1/users — the caller's own account, and other users' public profiles.

There is deliberately no route that lists users. Views use ``current_user()``: the
user the request's token was checked against (``eleva.security.authenticate``).
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest.fields import Upload

from eleva import ratelimit
from eleva.api import Blueprint, upload_body_limit
from eleva.errors import PayloadTooLarge
from eleva.extensions import limiter
from eleva.security import current_claims, current_user
from eleva.services import auth, pictures, users
from eleva.users.schemas import (
    PasswordChangeSchema,
    PasswordConfirmSchema,
    PrivateUserSchema,
    PublicUserSchema,
    UserUpdateSchema,
)

blp = Blueprint("users", __name__, description="Your account and public profiles")


# The media types a picture may be (judged by its content, whatever the part says).
PICTURE_ENCODING = {"file": {"contentType": "image/jpeg, image/png, image/webp, image/gif"}}


class PictureUploadSchema(ma.Schema):
    file = Upload(required=True, metadata={"description": "JPEG, PNG, WebP or GIF."})


@blp.route("/me")
class Me(MethodView):
    @blp.login_required
    @blp.response(200, PrivateUserSchema)
    def get(self):
        """Your own profile (private view)."""
        return current_user()

    @blp.login_required
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, PrivateUserSchema)
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, changes):
        """Change any of full_name, bio (≤ 500), username, email, privacy (itself partial).

        Your session keeps working after a change of email or username.
        """
        return users.update_profile(current_user(), changes)

    @blp.login_required
    @blp.arguments(PasswordConfirmSchema)
    @blp.response(204)
    def delete(self, data):
        """Deactivate your account (data kept); every session ends. Needs your password."""
        users.deactivate(current_user(), password=data["password"])


@blp.route("/me/password")
class MyPassword(MethodView):
    @blp.login_required
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    def put(self, data):
        """Change your password. Every other session ends; this one keeps working.

        A wrong current password, or a new one that breaks the rules, is a 422 field
        error (``current_password`` / ``new_password``).
        """
        users.change_password(
            current_user(), **data, session_id=auth.current_session_id(current_claims())
        )


@blp.route("/me/picture")
class MyPicture(MethodView):
    @blp.login_required
    @upload_body_limit
    @limiter.limit(ratelimit.upload_limit, key_func=ratelimit.current_user_id)
    @blp.arguments(PictureUploadSchema, location="files")
    @blp.doc(requestBody={"content": {"multipart/form-data": {"encoding": PICTURE_ENCODING}}})
    @blp.response(200, PrivateUserSchema)
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def put(self, files):
        """Upload a profile picture (multipart field ``file``, at most MAX_UPLOAD_MB).

        Judged by content: JPEG, PNG, WebP or GIF. Stored as a JPEG fitted within
        500×500, EXIF orientation applied and all metadata removed.
        """
        return pictures.set_picture(current_user(), _read_upload(files["file"]))

    @blp.login_required
    @blp.response(204)
    def delete(self):
        """Remove your profile picture."""
        pictures.remove_picture(current_user())


def _read_upload(file) -> bytes:
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    data = file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The file is larger than {current_app.config['MAX_UPLOAD_MB']} MB.")
    return data


@blp.route("/<username>")
class Profile(MethodView):
    @blp.login_required
    @blp.response(200, PublicUserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, username):
        """A user's public profile. 404 if unknown, deactivated, or private (unless yours)."""
        return users.public_profile(username, viewer=current_user())
