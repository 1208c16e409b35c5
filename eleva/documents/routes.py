"""/api/v1/subjects/<id>/documents and /api/v1/documents — the caller's files.

Another user's document or subject answers 404. Two routes take no bearer token: the
local backend's signed download and upload URLs (the link itself is the credential,
short-lived and bound to one object).
"""

from __future__ import annotations

from flask import send_file, url_for
from flask.views import MethodView

from eleva.documents.schemas import (
    DirectUploadCreateSchema,
    DirectUploadSchema,
    DocumentQuerySchema,
    DocumentSchema,
    DocumentUpdateSchema,
    DocumentUploadSchema,
    DownloadSchema,
    UploadTargetSchema,
)
from eleva.http import ratelimit
from eleva.http.api import Blueprint, body_limit
from eleva.http.ratelimit import limiter
from eleva.services import documents
from eleva.services.auth import CurrentUser

blp = Blueprint("documents", __name__, description="Your documents, per subject")

SUBJECT_ID = "<int(min=1, max=2147483647):subject_id>"
DOCUMENT_ID = "<int(min=1, max=2147483647):document_id>"


# Uploads through the API and direct upload starts share one budget per user
# (RATELIMIT_UPLOAD): two routes are not two budgets.
upload_budget = limiter.shared_limit(
    ratelimit.upload_limit,
    scope=ratelimit.DOCUMENT_UPLOAD_SCOPE,
    key_func=ratelimit.current_user_id,
)


def _location(document) -> dict[str, str]:
    return {"Location": url_for("documents.DocumentById", document_id=document.id)}


@blp.route(f"/subjects/{SUBJECT_ID}/documents")
class SubjectDocuments(MethodView):
    @blp.login_required
    @blp.arguments(DocumentQuerySchema, location="query")
    @blp.response(200, DocumentSchema(many=True))
    @blp.paginate(page_size=20, max_page_size=100)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser, query, subject_id, pagination_parameters):
        """List a subject's documents: sort, paginate (X-Pagination header)."""
        result = documents.list_documents(
            me.id,
            subject_id,
            sort=query["sort"],
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = result.total
        return result.items

    @blp.login_required
    @body_limit("DOCUMENT_MAX_MB")
    @upload_budget
    @blp.arguments(DocumentUploadSchema, location="files")
    @blp.response(201, DocumentSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="Its type is judged by content (415 otherwise). 413 when the file is "
        'larger than DOCUMENT_MAX_MB or would pass your storage quota (the message says "quota"). '
        "The file is streamed to storage, never held whole in memory. Uploads and direct "
        "starts share one limit per user (RATELIMIT_UPLOAD). A PDF, text, Markdown or DOCX "
        "answers ``text_status`` ``pending``: a background job extracts its text for search. "
        "At most TEXT_EXTRACTION_QUEUED of your documents are in its queue at a time; the "
        "others wait their turn, still pending, and are read in upload order."
    )
    def post(self, me: CurrentUser, files, subject_id):
        """Upload a document (multipart ``file``, optional ``title``)."""
        upload = files["file"]
        document = documents.upload_document(
            me.id, subject_id, upload.stream, filename=upload.filename, title=files.get("title")
        )
        return document, _location(document)


@blp.route(f"/subjects/{SUBJECT_ID}/documents/uploads")
class DirectUploads(MethodView):
    @blp.login_required
    @upload_budget
    @blp.arguments(DirectUploadCreateSchema)
    @blp.response(201, DirectUploadSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="Your quota is reserved now (413 when ``size`` is over DOCUMENT_MAX_MB or "
        "the quota). Send the file as a multipart POST to ``upload.url`` with every field of "
        "``upload.fields`` and then ``file``, of exactly ``size`` bytes, before "
        "``upload.expires_at`` (15 minutes); then call ``/documents/<id>/complete``. The "
        "upload URL works once. Uploads not completed within an hour are removed."
    )
    def post(self, me: CurrentUser, data, subject_id):
        """Start a direct upload: the file goes to storage, not through the API."""
        started = documents.start_direct_upload(me.id, subject_id, **data)
        body = {
            "document": started.document,
            "upload": {
                "url": started.upload.url,
                "form_fields": started.upload.fields,
                "expires_at": started.expires_at,
            },
        }
        return body, _location(started.document)


@blp.route(f"/documents/{DOCUMENT_ID}/complete")
class CompleteUpload(MethodView):
    @blp.login_required
    @blp.response(200, DocumentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    @blp.doc(
        description="200 with the document ``ready`` (also when it already was). 409 when "
        "nothing was uploaded yet (send it, then call again). When refused — another size "
        "than declared (413 larger, 422 smaller) or an unsupported type (415) — the stored "
        "file **and the document** are deleted and the quota freed: start a new upload."
    )
    def post(self, me: CurrentUser, document_id):
        """Finish a direct upload: the stored file's size and type are checked."""
        return documents.complete_upload(me.id, document_id)


@blp.route(f"/documents/{DOCUMENT_ID}")
class DocumentById(MethodView):
    @blp.login_required
    @blp.etag
    @blp.response(200, DocumentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser, document_id):
        """One of your documents, with its ETag (If-None-Match → 304)."""
        return documents.get_document(me.id, document_id)

    @blp.login_required
    @blp.etag
    @blp.arguments(DocumentUpdateSchema)
    @blp.response(200, DocumentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, me: CurrentUser, changes, document_id):
        """Rename (``title``) or move (``subject_id``, one of your subjects, else a 422
        field error). If-Match is optional; when sent, it must be the current ETag (412).
        """
        document = documents.get_document(me.id, document_id, for_update=True)
        blp.check_etag(document, DocumentSchema)
        return documents.update_document(me.id, document, changes)

    @blp.login_required
    @blp.etag
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, me: CurrentUser, document_id):
        """Delete a document and its stored file (If-Match optional, 412 when stale)."""
        document = documents.get_document(me.id, document_id, for_update=True)
        blp.check_etag(document, DocumentSchema)
        documents.delete_document(document)


@blp.route(f"/documents/{DOCUMENT_ID}/download")
class DocumentDownload(MethodView):
    @blp.login_required
    @blp.response(200, DownloadSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, me: CurrentUser, document_id):
        """A URL that downloads the file (as an attachment) for DOWNLOAD_URL_SECONDS.

        409 while the document is still being uploaded.
        """
        return documents.download(me.id, document_id)


@blp.route("/documents/files/<token>")
class DownloadFile(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, token):
        """A signed download URL (local storage only): the file, as an attachment with
        its detected type and ``nosniff``. 404 once expired."""
        found = documents.open_download(token)
        response = send_file(
            found.fileobj,
            mimetype=found.content_type,
            as_attachment=True,
            download_name=found.filename,
            max_age=0,
        )
        # Content-Security-Policy (default-src 'none') and nosniff come with every
        # response (eleva.http.web): even opened in a tab, nothing in it would run.
        response.headers["Cache-Control"] = "private, no-store"
        return response


@blp.route("/documents/uploads/<token>")
class UploadTarget(MethodView):
    @body_limit("DOCUMENT_MAX_MB")
    @blp.arguments(UploadTargetSchema, location="files")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, files, token):
        """A signed direct-upload URL (local storage only): multipart ``file`` of exactly
        the declared size. Works once (409 after); 404 once expired."""
        documents.receive_upload(token, files["file"].stream)
