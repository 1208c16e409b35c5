"""Marshmallow fields shared by the schemas."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma

from eleva.core.text import WHITESPACE

# What no text field takes: NUL (PostgreSQL refuses it), and STX and ETX, the usual in-band
# marks of text-search highlighting (PostgreSQL's ts_headline StartSel/StopSel): stored,
# they would forge highlights wherever such marks are read. (Eléva's own snippets are
# built without marks: eleva.core.search.)
REFUSED_CHARACTERS = "\x00\x02\x03"
_REFUSED = r"\u0000\u0002\u0003"
# Documented on Text fields without a pattern of their own (see eleva.api).
NO_NUL_PATTERN = rf"^[^{_REFUSED}]*$"
NOT_BLANK_PATTERN = rf"^[^{_REFUSED}]*[^\s{_REFUSED}][^{_REFUSED}]*$"
# has_visible_character as a pattern both JSON Schema's ECMA-262 dialect (without the
# Unicode flag: no \p{…} property escapes) and Python's re understand: at least one
# character that is not whitespace, a control, a format character (zero-width, bidi) or
# private use. Surrogates count as visible: without the flag an emoji is two of them (Text
# refuses lone ones), so any character beyond U+FFFF counts as visible (has_visible_character
# judges by this very pattern).
_INVISIBLE = (
    r"\s\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    r"\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ue000-\uf8ff"
    r"\ufeff\ufff9-\ufffb"
)
VISIBLE_PATTERN = rf"^[^{_REFUSED}]*[^{_INVISIBLE}][^{_REFUSED}]*$"
_VISIBLE_RE = re.compile(VISIBLE_PATTERN, re.DOTALL)


class Text(ma.fields.String):
    """A string that every layer below can store and encode, trimmed (``strip``) of
    surrounding ``WHITESPACE``. Length rules count the string as sent, as the spec's
    ``minLength``/``maxLength`` do; the other rules (patterns, email, choices) see it
    trimmed, as it is stored."""

    default_error_messages = {  # noqa: RUF012 (marshmallow's own declaration)
        "invalid_chars": "Contains characters that are not allowed.",
        "blank": "Must not be blank.",
    }

    def __init__(self, *, strip: bool = True, **kwargs: Any) -> None:
        self.strip = strip
        super().__init__(**kwargs)

    @property
    def must_not_be_blank(self) -> bool:
        return self.strip and any(
            isinstance(v, ma.validate.Length) and (v.min or v.equal) for v in self.validators
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        # NUL is refused by PostgreSQL and lone surrogates cannot be encoded as UTF-8: both
        # would surface as a 500 far from the input that caused it, so they stop here, with
        # STX and ETX (highlight marks).
        if any(char in text for char in REFUSED_CHARACTERS):
            raise self.make_error("invalid_chars")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("invalid_chars") from None
        return text

    def _validate(self, value: Any) -> None:
        if not self.strip:
            super()._validate(value)
            return
        trimmed = value.strip(WHITESPACE)
        errors: list[Any] = []
        lengths = [v for v in self.validators if isinstance(v, ma.validate.Length)]
        others = [v for v in self.validators if not isinstance(v, ma.validate.Length)]
        for validators, target in ((lengths, value), (others, trimmed)):
            try:
                ma.validate.And(*validators)(target)
            except ma.ValidationError as error:
                errors.extend(
                    error.messages if isinstance(error.messages, list) else [error.messages]
                )
        # Trimmed to nothing, a string that must have a length is refused.
        if not trimmed and self.must_not_be_blank:
            errors.append(self.error_messages["blank"])
        if errors:
            raise ma.ValidationError(errors)

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any):
        output = super().deserialize(value, attr, data, **kwargs)
        return output.strip(WHITESPACE) if self.strip and isinstance(output, str) else output


def has_visible_character(value: str) -> None:
    """A name must show something: a character that is not whitespace, a control, a
    format character or private use (in the BMP), i.e. letters, digits, punctuation,
    symbols, marks.

    Refuses names made only of invisible characters (zero-width spaces, bidi controls).
    """
    # The spec's pattern itself, so that what the spec calls valid is accepted: the same
    # judgement in Python as in ECMA-262 (an astral character, two surrogates there, is
    # visible in both).
    if not _VISIBLE_RE.match(value):
        raise ma.ValidationError("Must contain at least one visible character.")


class StrictBoolean(ma.fields.Boolean):
    """JSON true or false only: not 1, "yes" or "on", which marshmallow would accept."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictInteger(ma.fields.Integer):
    """A JSON integer only: not "5", 5.0, or true (a bool is an int to Python, and
    marshmallow's strict Integer takes it for 1)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictFloat(ma.fields.Float):
    """A JSON number only: not "0.9" or true. Never NaN or infinite."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)
