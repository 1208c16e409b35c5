"""User schemas, in the seed's pattern: a base of the fields a user edits, then one
schema per use — create, update, private view, public view.

The public view is its own schema with its own short field list, not the private one
filtered: a field added to users later cannot leak into public profiles by accident.
"""

from __future__ import annotations

from typing import Any, Protocol

import marshmallow as ma
from marshmallow import validate

from eleva.data.models import PROFILE_VISIBILITIES
from eleva.data.storage import storage
from eleva.http.fields import StrictBoolean, Text
from eleva.http.schemas import ResponseSchema

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,30}$"
# "me" names the caller's own profile in /users/me.
RESERVED_USERNAMES = frozenset({"me"})


def _not_reserved(value: str) -> None:
    if value.lower() in RESERVED_USERNAMES:
        raise ma.ValidationError("This username is reserved.")


def username_field(**kwargs: Any) -> Text:
    return Text(
        validate=[
            validate.Regexp(
                USERNAME_PATTERN,
                error="3 to 30 characters: letters, digits, '_', '.' or '-'.",
            ),
            _not_reserved,
        ],
        metadata={"example": "ada.l", "pattern": USERNAME_PATTERN},
        **kwargs,
    )


def email_field(*, metadata: dict[str, Any] | None = None, **kwargs: Any) -> Text:
    return Text(
        validate=[validate.Length(max=254), validate.Email()],
        metadata=metadata or {"format": "email", "example": "ada@example.com"},
        **kwargs,
    )


def password_field(*, metadata: dict[str, Any] | None = None, **kwargs: Any) -> Text:
    return Text(
        strip=False,
        validate=validate.Length(min=8, max=128),
        load_only=True,
        metadata={
            "description": "8 to 128 characters, any Unicode; not one of the 20,000 most "
            "common passwords, nor the username, the email or its local part (compared "
            "without case, after NFKC): those are a field error (422).",
            "format": "password",
            "example": "Enigma-rotor-1943",
            **(metadata or {}),
        },
        **kwargs,
    )


class PrivacySchema(ma.Schema):
    profile_visibility = Text(
        validate=validate.OneOf(PROFILE_VISIBILITIES), metadata={"example": "public"}
    )
    show_email = StrictBoolean(metadata={"example": False})


class UserBaseSchema(ma.Schema):
    """What a user may set on their own profile."""

    full_name = Text(
        allow_none=True, validate=validate.Length(max=100), metadata={"example": "Ada Lovelace"}
    )


class UserCreateSchema(UserBaseSchema):
    email = email_field(required=True)
    username = username_field(required=True)
    password = password_field(required=True)


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


class PrivacyViewSchema(ResponseSchema):
    profile_visibility = ma.fields.String(
        required=True, validate=validate.OneOf(PROFILE_VISIBILITIES)
    )
    show_email = ma.fields.Boolean(required=True)


class HasPicture(Protocol):
    picture_key: str | None


class ShowsEmail(Protocol):
    email: str
    show_email: bool


def picture_url(user: HasPicture) -> str | None:
    return storage.url(user.picture_key) if user.picture_key else None


class PrivateUserSchema(ResponseSchema):
    """The owner's own view."""

    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    email_verified = ma.fields.Boolean(
        required=True,
        metadata={"description": "The address was confirmed by a link sent to it."},
    )
    username = ma.fields.String(required=True)
    full_name = ma.fields.String(required=True, allow_none=True)
    bio = ma.fields.String(required=True, allow_none=True)
    profile_picture_url = ma.fields.Function(
        picture_url, required=True, allow_none=True, metadata={"type": "string", "format": "uri"}
    )
    is_active = ma.fields.Boolean(required=True)
    privacy = ma.fields.Nested(PrivacyViewSchema, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


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
        metadata={"description": "From the login's User-Agent.", "example": "Firefox 133 on Windows"},
    )
    ip = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "The login's client address."}
    )
    current = ma.fields.Boolean(
        required=True, metadata={"description": "This is the session of the request's token."}
    )
