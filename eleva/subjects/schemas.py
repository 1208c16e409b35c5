"""Subject request, query and response schemas."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from eleva.http.fields import VISIBLE_PATTERN, StrictBoolean, Text, has_visible_character
from eleva.http.schemas import ResponseSchema
from eleva.services.subjects import SORT_KEYS

COLOR_PATTERN = r"^#[0-9A-Fa-f]{6}$"


class SubjectBaseSchema(ma.Schema):
    name = Text(
        validate=[validate.Length(min=1, max=120), has_visible_character],
        metadata={"example": "Linear algebra", "pattern": VISIBLE_PATTERN},
    )
    description = Text(
        allow_none=True,
        validate=validate.Length(max=2000),
        metadata={"example": "Vectors, matrices, eigenvalues: MATH 221, spring term."},
    )
    color = Text(
        allow_none=True,
        validate=validate.Regexp(COLOR_PATTERN, error="A colour is #RRGGBB, e.g. #3A7BD5."),
        metadata={"example": "#3A7BD5", "pattern": COLOR_PATTERN},
    )
    exam_date = ma.fields.Date(
        allow_none=True,
        metadata={
            "description": "The exam's date (YYYY-MM-DD) or null: every card of the subject "
            "is due again by the start of the study day before it.",
            "example": "2027-01-18",
        },
    )


class SubjectCreateSchema(SubjectBaseSchema):
    name = Text(
        required=True,
        validate=[validate.Length(min=1, max=120), has_visible_character],
        metadata={"example": "Linear algebra", "pattern": VISIBLE_PATTERN},
    )


class SubjectUpdateSchema(SubjectBaseSchema):
    is_archived = StrictBoolean(metadata={"example": False})


class SubjectSchema(ResponseSchema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True, allow_none=True)
    color = ma.fields.String(required=True, allow_none=True)
    is_archived = ma.fields.Boolean(required=True)
    exam_date = ma.fields.Date(required=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class SubjectQuerySchema(ma.Schema):
    class Meta:
        # page and page_size belong to the pagination parser, which reads the same query.
        unknown = ma.EXCLUDE

    archived = Text(
        load_default="false",
        validate=validate.OneOf(["false", "true", "all"]),
        metadata={"description": "Archived subjects: false (default), true, or all."},
    )
    q = Text(
        validate=validate.Length(max=100),
        metadata={"description": "Case-insensitive search in name and description."},
    )
    sort = Text(
        load_default="-updated_at",
        validate=validate.OneOf(SORT_KEYS),
        metadata={"description": "Sort key; '-' for descending. Names sort case-insensitively."},
    )
