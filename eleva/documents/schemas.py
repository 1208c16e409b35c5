"""Document request, query and response schemas."""

from __future__ import annotations

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import validate

from eleva.http.fields import VISIBLE_PATTERN, StrictInteger, Text, has_visible_character
from eleva.http.schemas import ResponseSchema
from eleva.services.documents import SORT_KEYS


def title_field(description: str = "1 to 200 characters.") -> Text:
    return Text(
        validate=[validate.Length(min=1, max=200), has_visible_character],
        metadata={
            "example": "Lecture 3 — eigenvalues",
            "pattern": VISIBLE_PATTERN,
            "description": description,
        },
    )


class DocumentUploadSchema(ma.Schema):
    file = Upload(
        required=True,
        metadata={
            "description": "PDF, PNG, JPEG, WebP, GIF, UTF-8 text or Markdown, DOCX, XLSX, "
            "PPTX or ODT — judged by content — of at most DOCUMENT_MAX_MB."
        },
    )
    title = title_field("1 to 200 characters; default: the file name without its extension.")


class UploadTargetSchema(ma.Schema):
    file = Upload(required=True, metadata={"description": "Exactly the declared bytes."})


class DirectUploadCreateSchema(ma.Schema):
    filename = Text(
        required=True,
        validate=[validate.Length(min=1, max=1000), has_visible_character],
        metadata={"example": "lecture-3.pdf"},
    )
    size = ma.fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=2**53),
        metadata={"description": "Exactly the bytes that will be sent.", "example": 482133},
    )
    title = title_field()


class DocumentUpdateSchema(ma.Schema):
    title = title_field()
    subject_id = StrictInteger(
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "Move the document to another of your subjects.", "example": 2},
    )


class DocumentQuerySchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # page and page_size: the pagination parser's

    sort = Text(
        load_default="-created_at",
        validate=validate.OneOf(SORT_KEYS),
        metadata={"description": "Sort key; '-' for descending. Titles sort case-insensitively."},
    )


class DocumentSchema(ResponseSchema):
    id = ma.fields.Integer(required=True)
    subject_id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    filename = ma.fields.String(required=True)
    content_type = ma.fields.String(
        required=True,
        metadata={
            "description": "Detected from the content (application/octet-stream while uploading)."
        },
    )
    size = ma.fields.Integer(required=True, metadata={"description": "Bytes."})
    status = ma.fields.String(required=True, metadata={"enum": ["ready", "uploading"]})
    text_status = ma.fields.String(
        required=True,
        metadata={
            "enum": ["pending", "ready", "failed", "none"],
            "description": (
                "The text extracted for search by a background job: pending, then ready "
                "or failed (a malformed, encrypted or hostile file, or one that took too "
                "long); none for images and other types without text (PDF, text, "
                "Markdown and DOCX have text). At most the first 100 pages and 100,000 "
                "characters are read."
            ),
        },
    )
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class UploadFormSchema(ResponseSchema):
    url = ma.fields.String(required=True, metadata={"format": "uri"})
    # "fields" would shadow marshmallow's own Schema.fields: named apart, sent as such.
    form_fields = ma.fields.Dict(
        data_key="fields",
        keys=ma.fields.String(),
        values=ma.fields.String(),
        required=True,
        metadata={"description": "Send each as a form field, before `file`."},
    )
    expires_at = ma.fields.AwareDateTime(required=True)


class DirectUploadSchema(ResponseSchema):
    document = ma.fields.Nested(DocumentSchema, required=True)
    upload = ma.fields.Nested(UploadFormSchema, required=True)


class DownloadSchema(ResponseSchema):
    url = ma.fields.String(required=True, metadata={"format": "uri"})
    expires_at = ma.fields.AwareDateTime(required=True)
