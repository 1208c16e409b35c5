"""Search query and result schemas."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from eleva.http.fields import Text
from eleva.http.schemas import ResponseSchema
from eleva.services.search import KINDS


class SearchQuerySchema(ma.Schema):
    class Meta:
        # page and page_size belong to the pagination parser, which reads the same query.
        unknown = ma.EXCLUDE

    q = Text(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "Words to find (case and accents ignored); the last word also "
            "matches as a prefix, for search as you type.",
            "example": "linear alg",
        },
    )
    type = ma.fields.List(
        Text(validate=validate.OneOf(KINDS)),
        metadata={"description": "Repeatable: subject, note, document, card. Default: all."},
    )
    subject_id = ma.fields.Integer(
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "Only within this subject of yours."},
    )


class SearchHitSchema(ResponseSchema):
    type = ma.fields.String(required=True, metadata={"enum": list(KINDS)})
    id = ma.fields.Integer(required=True)
    subject_id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    snippet = ma.fields.String(
        required=True,
        metadata={"description": "Plain text (≤ 200 characters) around the best match."},
    )
    highlights = ma.fields.List(
        ma.fields.List(ma.fields.Integer(), validate=validate.Length(equal=2)),
        required=True,
        metadata={
            "description": "[start, end) offsets of the matched words in the snippet, "
            "in Unicode code points."
        },
    )
