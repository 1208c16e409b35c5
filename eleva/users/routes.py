"""/api/v1/users — the caller's own account, and other users' public profiles.

There is deliberately no route that lists users.
"""

from __future__ import annotations

from collections.abc import Callable

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest.fields import Upload

from eleva.core.errors import PayloadTooLarge
from eleva.http import ratelimit
from eleva.http.api import Blueprint, upload_body_limit
from eleva.http.ratelimit import limiter
from eleva.services import documents, erasure, exports, pictures, sessions, users
from eleva.services.auth import CurrentUser
from eleva.users.schemas import (
    ErasureScheduledSchema,
    ExportDownloadSchema,
    ExportSchema,
    PasswordChangeSchema,
    PasswordConfirmSchema,
    PrivateUserSchema,
    PublicUserSchema,
    SessionSchema,
    StorageUsageSchema,
    UserUpdateSchema,
)

blp = Blueprint("users", __name__, description="Your account and public profiles")


# The media types a picture may be (judged by its content, whatever the part says).
PICTURE_ENCODING = {"file": {"contentType": "image/jpeg, image/png, image/webp, image/gif"}}


class PictureUploadSchema(ma.Schema):
    file = Upload(required=True, metadata={"description": "JPEG, PNG, WebP or GIF."})


def password_check_limits(view: Callable) -> Callable:
    """The limits of a route that checks the caller's password: its own, shared by both
    such routes (each bcrypt check is costly by design), and the account's login counter,
    so a stolen access token gives no more guesses at the password than the login does."""
    view = limiter.shared_limit(
        ratelimit.login_limit, scope=ratelimit.ACCOUNT_SCOPE, key_func=ratelimit.current_account
    )(view)
    return limiter.shared_limit(
        ratelimit.password_check_limit,
        scope=ratelimit.PASSWORD_CHECK_SCOPE,
        key_func=ratelimit.current_user_id,
    )(view)


@blp.route("/me")
class Me(MethodView):
    @blp.login_required
    @blp.response(200, PrivateUserSchema)
    def get(self, me: CurrentUser):
        """Your own profile (private view)."""
        return me

    @blp.login_required
    # A 409 or a 200 tells whether an address is registered: changes of email are
    # limited per user (other changes are not counted). They check the password too:
    # each counts against the account's login limit, as a login does.
    @limiter.shared_limit(
        ratelimit.login_limit,
        scope=ratelimit.ACCOUNT_SCOPE,
        key_func=ratelimit.current_account,
        exempt_when=ratelimit.changes_no_email,
    )
    @limiter.limit(
        ratelimit.email_change_limit,
        key_func=ratelimit.current_user_id,
        exempt_when=ratelimit.changes_no_email,
    )
    @blp.arguments(
        UserUpdateSchema,
        examples={
            "profile": {"value": {"full_name": "Ada Lovelace", "bio": "Notes on the Engine."}},
            "email": {
                "summary": "A new email (with your password)",
                "value": {"email": "ada@example.org", "current_password": "Enigma-rotor-1943"},
            },
        },
    )
    @blp.response(200, PrivateUserSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="A new email needs ``current_password`` as well (422 on "
        "``current_password`` when it is missing or wrong; each such request counts against "
        "the account's login limit, as a login does). It takes effect at once with "
        "``email_verified`` false: a verification link goes to the new address; the old one "
        'gets a notice with a "this wasn\'t me" link (``{FRONTEND_URL}/revert-email?token=…``, '
        "see ``POST /auth/email/revert``), valid EMAIL_REVERT_DAYS, during which no other "
        "account can take the old address; every password-reset link dies. Your session "
        "keeps working after a change of email or username. Requests that change the email "
        "are limited per user (RATELIMIT_EMAIL_CHANGE): they tell whether an address is taken."
    )
    def patch(self, me: CurrentUser, changes):
        """Change any of full_name, bio (≤ 500), username, email, privacy, study (partial)."""
        return users.update_profile(me.id, changes)

    @blp.login_required
    @password_check_limits
    @blp.arguments(PasswordConfirmSchema)
    @blp.response(204, description="Deactivated (without erase).")
    @blp.alt_response(
        202,
        schema=ErasureScheduledSchema,
        success=True,
        description="Deactivated, and to be erased for good at erase_at (with erase).",
    )
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="Needs your password: a wrong one is a 422 field error. Password checks "
        "are limited per user (``RATELIMIT_PASSWORD_CHECK``) and count against the account's "
        "login limit: 429.\n\n"
        'With ``"erase": true``: 202 ``{erase_at}``. The account is deactivated at once and '
        "erased for good at ``erase_at`` (ERASURE_GRACE_DAYS later): every row and every "
        "stored file of yours. An email gives the date and a link, "
        "``{FRONTEND_URL}/cancel-erasure?token=…``, that keeps the account until then "
        "(``POST /auth/erasure/cancel``). Afterwards the email address and the username can "
        "be registered again."
    )
    def delete(self, me: CurrentUser, data):
        """Deactivate your account (data kept), or have it erased; every session ends."""
        if data["erase"]:
            erase_at = erasure.request_erasure(me.id, password=data["password"])
            return ErasureScheduledSchema().dump({"erase_at": erase_at}), 202
        users.deactivate(me.id, password=data["password"])


@blp.route("/me/password")
class MyPassword(MethodView):
    @blp.login_required
    @password_check_limits
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="A wrong current password, or a new one that breaks the rules, is a 422 "
        "field error (``current_password`` / ``new_password``). Password checks are limited "
        "per user (``RATELIMIT_PASSWORD_CHECK``) and count against the account's login "
        "limit, as failed logins do: 429 with ``Retry-After``."
    )
    def put(self, me: CurrentUser, data):
        """Change your password. Every other session ends; this one keeps working."""
        users.change_password(me.id, me.session_id, **data)


@blp.route("/me/sessions")
class MySessions(MethodView):
    @blp.login_required
    @blp.response(200, SessionSchema(many=True))
    @blp.paginate(page_size=20, max_page_size=100)
    def get(self, me: CurrentUser, pagination_parameters):
        """Where you are signed in: your live login sessions, most recently used first.

        ``last_used_at`` is the last login or token refresh; ``current`` marks the
        session of this request's token. Paginated (X-Pagination header).
        """
        page = sessions.list_sessions(
            me.id,
            me.session_id,
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = page.total
        return page.items

    @blp.login_required
    @blp.response(204)
    def delete(self, me: CurrentUser):
        """Sign out everywhere else: every session but this one ends at once."""
        sessions.end_other_sessions(me.id, keep=me.session_id)


@blp.route("/me/sessions/<uuid:session_id>")
class MySession(MethodView):
    @blp.login_required
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, me: CurrentUser, session_id):
        """End one of your sessions: its access and refresh tokens stop working at once.

        This request's own session may be ended too (as logging out does). 404 when no
        live session of yours has this id.
        """
        sessions.end_session(me.id, session_id)


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
    def put(self, me: CurrentUser, files):
        """Upload a profile picture (multipart field ``file``, at most MAX_UPLOAD_MB).

        Judged by content: JPEG, PNG, WebP or GIF. Stored as a JPEG fitted within
        500×500, EXIF orientation applied and all metadata removed.
        """
        return pictures.set_picture(me.id, _read_upload(files["file"]))

    @blp.login_required
    @blp.response(204)
    def delete(self, me: CurrentUser):
        """Remove your profile picture."""
        pictures.remove_picture(me.id)


def _read_upload(file) -> bytes:
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    data = file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The file is larger than {current_app.config['MAX_UPLOAD_MB']} MB.")
    return data


@blp.route("/me/storage")
class MyStorage(MethodView):
    @blp.login_required
    @blp.response(200, StorageUsageSchema)
    def get(self, me: CurrentUser):
        """Your stored bytes and your quota: documents (uploads in progress included)
        and notes (title and body in UTF-8) count; past the quota, both are refused (413)."""
        return documents.storage_usage(me.id)


EXPORT_EXAMPLE = {
    "id": 7,
    "status": "pending",
    "requested_at": "2026-12-08T10:00:00+00:00",
    "ready_at": None,
    "expires_at": None,
    "size": None,
}


@blp.route("/me/export")
class MyExport(MethodView):
    @blp.login_required
    @blp.response(202, ExportSchema, example=EXPORT_EXAMPLE)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="A background job builds one ZIP: ``eleva-export.json`` (format_version "
        "1: your account, your login sessions, every subject with its notes and documents), "
        "each note as Markdown under ``notes/``, each document byte for byte under "
        "``documents/``, and your profile picture. When it is ready an email links to "
        "``{FRONTEND_URL}/export``; it is deleted EXPORT_KEEP_DAYS later. One export per "
        "EXPORT_INTERVAL_HOURS (a failed one does not count): 429 with ``Retry-After`` "
        "before that. 503 when the job queue is down (nothing recorded)."
    )
    def post(self, me: CurrentUser):
        """Ask for an archive of everything you keep here (GDPR: access, portability)."""
        return exports.request_export(me.id)

    @blp.login_required
    @blp.response(200, ExportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser):
        """Your latest export and its status (pending, ready, failed, expired).

        404 when you never asked for one.
        """
        return exports.latest_export(me.id)


@blp.route("/me/export/download")
class MyExportDownload(MethodView):
    @blp.login_required
    @blp.response(200, ExportDownloadSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, me: CurrentUser):
        """A URL that downloads your latest ready archive (a ZIP, as an attachment).

        The URL works DOWNLOAD_URL_SECONDS; ask again for a new one. 404 when no
        export of yours is ready (pending, failed, or expired).
        """
        return exports.download(me.id)


@blp.route("/<username>")
class Profile(MethodView):
    @blp.login_required
    @blp.response(200, PublicUserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser, username):
        """A user's public profile. 404 if unknown, deactivated, or private (unless yours)."""
        return users.public_profile(username, viewer_id=me.id)
