"""/api/v1/subjects/<id>/notes and /api/v1/notes/<id> — notes in the caller's own
subjects (another user's subject or note answers 404)."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView

from eleva.http import ratelimit
from eleva.http.api import Blueprint, json_body_limit
from eleva.http.ratelimit import limiter
from eleva.notes.schemas import (
    BODY_MAX,
    TITLE_MAX,
    NoteCreateSchema,
    NoteListItemSchema,
    NoteQuerySchema,
    NoteSchema,
    NoteUpdateSchema,
)
from eleva.services import notes
from eleva.services.auth import CurrentUser

# Creating and changing notes share one budget per user (RATELIMIT_NOTE_WRITE): a note
# is up to 100,000 characters, indexed for search on every write.
note_writes = limiter.shared_limit(
    ratelimit.note_write_limit,
    scope=ratelimit.NOTE_WRITE_SCOPE,
    key_func=ratelimit.current_user_id,
)

blp = Blueprint("notes", __name__, description="Markdown notes in your subjects")

# Ids are PostgreSQL integers: a larger number in the URL is simply not found.
SUBJECT_ID = "<int(min=1, max=2147483647):subject_id>"
NOTE_ID = "<int(min=1, max=2147483647):note_id>"

# The body limit of the note writes: a note at its largest however the client encodes
# it. A JSON encoder that escapes non-ASCII (Python's json.dumps, Flask's test client)
# writes a 4-byte character as a surrogate pair, "\ud83d\ude00": 12 bytes; raw UTF-8
# takes 4. Plus 64 KiB for the keys, subject_id and whitespace. About 1.2 MiB, against
# 64 KiB for every other JSON route.
NOTE_BODY_BYTES = (BODY_MAX + TITLE_MAX) * 12 + 64 * 1024


@blp.route(f"/subjects/{SUBJECT_ID}/notes")
class SubjectNotes(MethodView):
    @blp.login_required
    @blp.arguments(NoteQuerySchema, location="query")
    @blp.response(200, NoteListItemSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(page_size=20, max_page_size=100)
    def get(self, me: CurrentUser, query, subject_id, pagination_parameters):
        """List a subject's notes, with excerpts: sort, paginate (X-Pagination header)."""
        result = notes.list_notes(
            me.id,
            subject_id,
            **query,
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = result.total
        return result.items

    @blp.login_required
    @json_body_limit(NOTE_BODY_BYTES)
    @note_writes
    @blp.arguments(NoteCreateSchema)
    @blp.response(201, NoteSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, me: CurrentUser, data, subject_id):
        """Write a note in one of your subjects. Location: /api/v1/notes/<id>.

        A note counts in your storage quota (its title and body in UTF-8, see GET
        /users/me/storage): 413, with a message that says "quota", when it would pass it.
        Note writes (creations and changes) are limited per user (RATELIMIT_NOTE_WRITE).
        """
        note = notes.create_note(me.id, subject_id, data)
        return note, {"Location": url_for("notes.NoteById", note_id=note.id)}


@blp.route(f"/notes/{NOTE_ID}")
class NoteById(MethodView):
    @blp.login_required
    @blp.etag
    @blp.response(200, NoteSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser, note_id):
        """One of your notes, with its ETag (If-None-Match → 304)."""
        return notes.get_note(me.id, note_id)

    @blp.login_required
    @json_body_limit(NOTE_BODY_BYTES)
    @note_writes
    @blp.etag
    @blp.arguments(NoteUpdateSchema)
    @blp.response(200, NoteSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def patch(self, me: CurrentUser, changes, note_id):
        """Change any of title, body, subject_id (a move to another of your subjects).

        A subject_id that is not one of yours is a 422 field error. If-Match is
        optional; when sent, it must be the current ETag (else 412). A longer note must
        fit in your storage quota (413); writes are limited per user (429).
        """
        note = notes.get_note(me.id, note_id, for_update=True)
        blp.check_etag(note, NoteSchema)
        return notes.update_note(me.id, note, changes)

    @blp.login_required
    @blp.etag
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, me: CurrentUser, note_id):
        """Delete a note for good. If-Match is optional (412 when stale)."""
        note = notes.get_note(me.id, note_id, for_update=True)
        blp.check_etag(note, NoteSchema)
        notes.delete_note(note)
