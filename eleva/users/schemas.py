"""User schemas, in the seed's pattern: a base of the fields a user edits, then one
schema per use — create, update, private view, public view.

The public view is its own schema with its own short field list, not the private one
filtered: a field added to users later cannot leak into public profiles by accident.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from eleva.core import study
from eleva.data.models import PROFILE_VISIBILITIES
from eleva.http.accounts import (
    PrivateUserSchema,
    ShowsEmail,
    UserBaseSchema,
    UserCreateSchema,
    email_field,
    password_field,
    picture_url,
    username_field,
)
from eleva.http.fields import StrictBoolean, StrictFloat, StrictInteger, Text
from eleva.http.schemas import ResponseSchema

__all__ = ["PrivateUserSchema", "UserCreateSchema"]  # shown and taken here too


class PrivacySchema(ma.Schema):
    profile_visibility = Text(
        validate=validate.OneOf(PROFILE_VISIBILITIES), metadata={"example": "public"}
    )
    show_email = StrictBoolean(metadata={"example": False})


class StudySettingsSchema(ma.Schema):
    """The study settings a user may change (each optional: a partial update)."""

    # The zones this server knows, listed in the spec (a client can offer them).
    timezone = Text(
        validate=validate.OneOf(
            sorted(study.timezone_names()),
            error="Not a known IANA time zone (e.g. Europe/Paris).",
        ),
        metadata={"description": "An IANA time zone.", "example": "Europe/Paris"},
    )
    day_starts_at_hour = StrictInteger(
        validate=validate.Range(min=0, max=23),
        metadata={
            "description": "A study day runs from this hour to the same hour the "
            "next day, local time.",
            "example": 4,
        },
    )
    new_cards_per_day = StrictInteger(
        validate=validate.Range(min=0, max=study.MAX_NEW_CARDS_PER_DAY),
        metadata={"description": "New cards the queue offers per study day.", "example": 20},
    )
    desired_retention = StrictFloat(
        validate=validate.Range(min=study.MIN_RETENTION, max=study.MAX_RETENTION),
        metadata={"description": "The recall probability FSRS schedules for.", "example": 0.9},
    )


class UserUpdateSchema(UserBaseSchema):
    """PATCH /users/me: every field optional; ``privacy`` itself partial."""

    bio = Text(
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"example": "First programmer; notes on the Analytical Engine."},
    )
    username = username_field()
    email = email_field(
        metadata={
            "format": "email",
            "example": "ada@example.com",
            "description": "A new address needs current_password too.",
        }
    )
    current_password = Text(
        strip=False,
        load_only=True,
        metadata={
            "format": "password",
            "example": "Enigma-rotor-1943",
            "description": "Your password: required when email changes (a field error when "
            "missing or wrong; a wrong one counts against the account's login limit), "
            "ignored otherwise.",
        },
    )
    privacy = ma.fields.Nested(PrivacySchema)
    study = ma.fields.Nested(StudySettingsSchema)


class PasswordChangeSchema(ma.Schema):
    current_password = Text(
        strip=False,
        required=True,
        load_only=True,
        metadata={
            "format": "password",
            "example": "Enigma-rotor-1943",
            "description": "Your password: any other string is a field error (422), and "
            "counts against the account's login limit.",
        },
    )
    new_password = password_field(required=True, metadata={"example": "Bombe-at-Bletchley-1940"})


class PasswordConfirmSchema(ma.Schema):
    password = Text(
        strip=False,
        required=True,
        load_only=True,
        metadata={
            "format": "password",
            "example": "Enigma-rotor-1943",
            "description": "Your password: any other string is a field error (422), and "
            "counts against the account's login limit.",
        },
    )
    erase = StrictBoolean(
        load_default=False,
        load_only=True,
        metadata={
            "example": False,
            "description": "Also erase the account for good after ERASURE_GRACE_DAYS "
            "(answered 202 with erase_at); an email gives the date and a link that "
            "cancels the erasure until then.",
        },
    )


class ErasureScheduledSchema(ResponseSchema):
    erase_at = ma.fields.AwareDateTime(
        required=True,
        metadata={
            "description": "When the account is erased for good (now + ERASURE_GRACE_DAYS).",
            "example": "2027-01-07T10:00:00+00:00",
        },
    )


EXPORT_STATUSES = ("pending", "ready", "failed", "expired")


class ExportSchema(ResponseSchema):
    """One archive of your data."""

    id = ma.fields.Integer(required=True, metadata={"example": 7})
    status = ma.fields.String(
        required=True,
        metadata={
            "enum": list(EXPORT_STATUSES),
            "example": "ready",
            "description": "pending while it is built; ready to download until "
            "expires_at; failed (nothing kept: ask again); expired once deleted.",
        },
    )
    requested_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2026-12-08T10:00:00+00:00"}
    )
    ready_at = ma.fields.AwareDateTime(
        required=True, allow_none=True, metadata={"example": "2026-12-08T10:02:41+00:00"}
    )
    expires_at = ma.fields.AwareDateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "When the archive is deleted (EXPORT_KEEP_DAYS after ready_at).",
            "example": "2026-12-15T10:02:41+00:00",
        },
    )
    size = ma.fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The archive's bytes, once ready.", "example": 48213377},
    )


class ExportDownloadSchema(ResponseSchema):
    url = ma.fields.String(
        required=True,
        metadata={
            "format": "uri",
            "description": "Downloads the ZIP as an attachment; works DOWNLOAD_URL_SECONDS.",
            "example": "https://api.eleva.app/api/v1/documents/files/eyJrIjoiZXhwb3J0cy8",
        },
    )
    expires_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2026-12-08T10:10:00+00:00"}
    )


class PublicUserSchema(ResponseSchema):
    """What anyone signed in may see of a public profile."""

    username = ma.fields.String(required=True)
    full_name = ma.fields.String(required=True, allow_none=True)
    bio = ma.fields.String(required=True, allow_none=True)
    profile_picture_url = ma.fields.Function(
        picture_url, required=True, allow_none=True, metadata={"type": "string", "format": "uri"}
    )
    email = ma.fields.Method(
        "shown_email",
        metadata={"type": "string", "description": "Only when the user chose to show it."},
    )

    def shown_email(self, user: ShowsEmail) -> Any:
        # missing (not null) drops the key from the output altogether.
        return user.email if user.show_email else ma.missing


class StorageUsageSchema(ResponseSchema):
    used_bytes = ma.fields.Integer(
        required=True,
        metadata={
            "description": "What counts in your quota: the bytes of your documents (uploads "
            "in progress included) and of your notes (each note's title and body, UTF-8)."
        },
    )
    quota_bytes = ma.fields.Integer(required=True, metadata={"description": "STORAGE_QUOTA_MB."})
    documents = ma.fields.Integer(required=True, metadata={"description": "How many documents."})
    max_document_bytes = ma.fields.Integer(
        required=True, metadata={"description": "The largest file accepted (DOCUMENT_MAX_MB)."}
    )


class SessionSchema(ResponseSchema):
    """One login session of the caller."""

    id = ma.fields.UUID(required=True)
    created_at = ma.fields.AwareDateTime(required=True, metadata={"description": "The login."})
    last_used_at = ma.fields.AwareDateTime(
        required=True, metadata={"description": "The last login or token refresh."}
    )
    device = ma.fields.String(
        required=True,
        metadata={
            "description": "From the login's User-Agent.",
            "example": "Firefox 133 on Windows",
        },
    )
    ip = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "The login's client address."}
    )
    current = ma.fields.Boolean(
        required=True, metadata={"description": "This is the session of the request's token."}
    )
