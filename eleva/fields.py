"""Marshmallow fields shared by the schemas."""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

import marshmallow as ma


class Text(ma.fields.String):
    """A string that every layer below can store and encode.

    NUL is refused by PostgreSQL and lone surrogates cannot be encoded as UTF-8: both
    would surface as a 500 far from the input that caused it, so they stop here.
    ``strip`` trims surrounding whitespace before the length and pattern validators run.
    """

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid_chars": "Contains characters that are not allowed."
    }

    def __init__(self, *, strip: bool = True, **kwargs: Any) -> None:
        self.strip = strip
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("invalid_chars")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("invalid_chars") from None
        return text.strip() if self.strip else text


def has_visible_character(value: str) -> None:
    """A name must show something: letters, digits, punctuation, symbols or marks.

    Refuses names made only of invisible characters (zero-width spaces, bidi controls).
    """
    if not any(unicodedata.category(ch)[0] in "LNPSM" for ch in value):
        raise ma.ValidationError("Must contain at least one visible character.")


class StrictBoolean(ma.fields.Boolean):
    """JSON true or false only: not 1, "yes" or "on", which marshmallow would accept."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
