"""Note request, query and response schemas."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from eleva.http.fields import VISIBLE_PATTERN, StrictInteger, Text, has_visible_character
from eleva.http.schemas import ResponseSchema
from eleva.services.notes import SORT_KEYS

TITLE_MAX = 200
BODY_MAX = 100_000
# Ids are PostgreSQL integers.
MAX_ID = 2**31 - 1


def _title(**kwargs: Any) -> Text:
    return Text(
        validate=[validate.Length(min=1, max=TITLE_MAX), has_visible_character],
        metadata={"example": "Eigenvalues", "pattern": VISIBLE_PATTERN},
        **kwargs,
    )


def _body(**kwargs: Any) -> Text:
    # Markdown keeps its whitespace: indentation is code, two trailing spaces a break.
    return Text(
        strip=False,
        validate=validate.Length(max=BODY_MAX),
        metadata={
            "description": f"Markdown, up to {BODY_MAX:,} characters (Unicode code points); "
            "may be empty.",
            "example": "# Eigenvalues\n\n*Av* = λ*v* …",
        },
        **kwargs,
    )


class NoteCreateSchema(ma.Schema):
    title = _title(required=True)
    body = _body(load_default="")


class NoteUpdateSchema(ma.Schema):
    title = _title()
    body = _body()
    subject_id = StrictInteger(
        validate=validate.Range(min=1, max=MAX_ID, error="No such subject among yours."),
        metadata={"description": "Move the note to another of your subjects.", "example": 2},
    )


class NoteSchema(ResponseSchema):
    id = ma.fields.Integer(required=True)
    subject_id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    body = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class NoteListItemSchema(ResponseSchema):
    """A note in a list: ``excerpt`` instead of ``body``."""

    id = ma.fields.Integer(required=True)
    subject_id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    excerpt = ma.fields.String(
        required=True,
        metadata={
            "description": "The body's first 200 characters as plain text (Markdown "
            "markup removed, whitespace collapsed), ending with … when cut."
        },
    )
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class NoteQuerySchema(ma.Schema):
    class Meta:
        # page and page_size belong to the pagination parser, which reads the same query.
        unknown = ma.EXCLUDE

    sort = Text(
        load_default="-updated_at",
        validate=validate.OneOf(SORT_KEYS),
        metadata={
            "description": "Sort key; '-' for descending (default -updated_at). Titles "
            "sort case-insensitively; ties by id."
        },
    )
