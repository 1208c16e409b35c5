"""Auth request and response bodies."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from eleva.http.accounts import email_field, password_field
from eleva.http.fields import StrictBoolean, Text
from eleva.http.schemas import ResponseSchema
from eleva.services import accounts, erasure


class LoginSchema(ma.Schema):
    login = Text(
        required=True,
        validate=validate.Length(min=1, max=254),
        metadata={"description": "Email or username, any case.", "example": "ada@example.com"},
    )
    # Any string: a password that is not the right one, whatever its length or content
    # (NUL, lone surrogates), is a 401, never a 422. The JSON body limit bounds its size;
    # the hash encodes any str (eleva.core.passwords).
    password = ma.fields.String(
        required=True,
        load_only=True,
        metadata={"format": "password", "example": "Enigma-rotor-1943"},
    )
    refresh_in_cookie = StrictBoolean(
        load_default=False,
        load_only=True,
        metadata={
            "example": False,
            "description": "Put the refresh token in the HttpOnly cookie eleva_refresh "
            "(Path=/api/v1/auth) instead of the body; the body then has csrf_token, to "
            "send back as X-CSRF-Token with POST /refresh.",
        },
    )


class LogoutSchema(ma.Schema):
    refresh_token = Text(
        strip=False,
        validate=validate.Length(max=4096),
        load_only=True,
        metadata={
            "description": "Also end the login session this refresh token belongs to.",
            "example": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2lnbmF0dXJl",
        },
    )


class TokenPairSchema(ResponseSchema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(
        metadata={"description": "Absent when the refresh token is in the cookie."}
    )
    csrf_token = ma.fields.String(
        metadata={
            "description": "Only with the refresh cookie: send it as X-CSRF-Token with the "
            "next POST /refresh (each refresh hands out a new one)."
        }
    )
    token_type = ma.fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = ma.fields.Integer(
        required=True, metadata={"description": "Seconds until the access token expires."}
    )


# Every link's token is 256 random bits, URL-safe base64 (eleva.core.tokens.new_secret):
# anything else cannot be one, and the spec says so.
LINK_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # noqa: S105 (a pattern, not a secret)


def link_token_field(refused: str, **kwargs) -> Text:
    """A link's token; ``refused`` is the message for any token that is not a live one,
    malformed or not (one message for all: the contract's)."""
    return Text(
        strip=False,
        required=True,
        validate=validate.Regexp(LINK_TOKEN_PATTERN, error=refused),
        load_only=True,
        metadata={
            "description": "The token of the link sent by email: 43 characters of "
            "A–Z, a–z, 0–9, '-' and '_'. One that is not a live token is a field error.",
            "example": "Xq3vN0bYfH2kLr8sT1uW5zA7cE9gJ4mP6oR2tV8yB0d",
            "pattern": LINK_TOKEN_PATTERN,
            "minLength": 43,
            "maxLength": 43,
        },
        **kwargs,
    )


class PasswordForgotSchema(ma.Schema):
    email = email_field(required=True)


class PasswordResetSchema(ma.Schema):
    token = link_token_field(accounts.BAD_RESET_TOKEN)
    new_password = password_field(required=True)


class EmailVerifySchema(ma.Schema):
    token = link_token_field(accounts.BAD_VERIFY_TOKEN)


class EmailRevertSchema(ma.Schema):
    token = link_token_field(accounts.BAD_REVERT_TOKEN)


class ErasureCancelSchema(ma.Schema):
    token = link_token_field(erasure.BAD_CANCEL_TOKEN)


class MessageSchema(ResponseSchema):
    message = ma.fields.String(required=True)
