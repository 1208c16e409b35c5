"""Auth request and response bodies."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from eleva.http.fields import Text
from eleva.http.schemas import ResponseSchema


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
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = ma.fields.Integer(
        required=True, metadata={"description": "Seconds until the access token expires."}
    )
