"""What an account looks like over HTTP, for every domain that shows or takes one (auth
registers and answers with the private view; users edits and shows it)."""

from __future__ import annotations

from typing import Any, Protocol

import marshmallow as ma
from marshmallow import validate

from eleva.data.models import PROFILE_VISIBILITIES
from eleva.data.storage import storage
from eleva.http.fields import Text
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


class UserBaseSchema(ma.Schema):
    """What a user may set on their own profile."""

    full_name = Text(
        allow_none=True, validate=validate.Length(max=100), metadata={"example": "Ada Lovelace"}
    )


class UserCreateSchema(UserBaseSchema):
    email = email_field(required=True)
    username = username_field(required=True)
    password = password_field(required=True)


class PrivacyViewSchema(ResponseSchema):
    profile_visibility = ma.fields.String(
        required=True, validate=validate.OneOf(PROFILE_VISIBILITIES)
    )
    show_email = ma.fields.Boolean(required=True)


class StudySettingsViewSchema(ResponseSchema):
    timezone = ma.fields.String(required=True, metadata={"example": "Europe/Paris"})
    day_starts_at_hour = ma.fields.Integer(required=True, metadata={"example": 4})
    new_cards_per_day = ma.fields.Integer(required=True, metadata={"example": 20})
    desired_retention = ma.fields.Float(required=True, metadata={"example": 0.9})


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
    study = ma.fields.Nested(StudySettingsViewSchema, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)
