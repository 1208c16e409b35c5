"""User schemas, in the seed's pattern: a base of the fields a user edits, then one
schema per use — create, update, private view, public view.

The public view is its own schema with its own short field list, not the private one
filtered: a field added to users later cannot leak into public profiles by accident.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

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
from eleva.http.fields import StrictBoolean, Text
from eleva.http.schemas import ResponseSchema

__all__ = ["PrivateUserSchema", "UserCreateSchema"]  # shown and taken here too

class PrivacySchema(ma.Schema):
    profile_visibility = Text(
        validate=validate.OneOf(PROFILE_VISIBILITIES), metadata={"example": "public"}
    )
    show_email = StrictBoolean(metadata={"example": False})


class UserUpdateSchema(UserBaseSchema):
    """PATCH /users/me: every field optional; ``privacy`` itself partial."""

    bio = Text(
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"example": "First programmer; notes on the Analytical Engine."},
    )
    username = username_field()
    email = email_field()
    privacy = ma.fields.Nested(PrivacySchema)


class PasswordChangeSchema(ma.Schema):
    current_password = Text(
        strip=False,
        required=True,
        load_only=True,
        metadata={"format": "password", "example": "Enigma-rotor-1943"},
    )
    new_password = password_field(required=True, metadata={"example": "Bombe-at-Bletchley-1940"})


class PasswordConfirmSchema(ma.Schema):
    password = Text(
        strip=False,
        required=True,
        load_only=True,
        metadata={"format": "password", "example": "Enigma-rotor-1943"},
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
        metadata={"description": "Bytes of your documents, uploads in progress included."},
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
        metadata={"description": "From the login's User-Agent.", "example": "Firefox 133 on Windows"},
    )
    ip = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "The login's client address."}
    )
    current = ma.fields.Boolean(
        required=True, metadata={"description": "This is the session of the request's token."}
    )
