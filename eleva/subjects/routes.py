"""/api/v1/subjects — the caller's own subjects (another user's answer 404)."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView

from eleva.http.api import Blueprint
from eleva.services import subjects
from eleva.services.auth import CurrentUser
from eleva.subjects.schemas import (
    SubjectCreateSchema,
    SubjectQuerySchema,
    SubjectSchema,
    SubjectUpdateSchema,
)

blp = Blueprint("subjects", __name__, description="Your study subjects")

# Ids are PostgreSQL integers: a larger number in the URL is simply not found.
SUBJECT_ID = "<int(min=1, max=2147483647):subject_id>"


@blp.route("/")
class Subjects(MethodView):
    @blp.login_required
    @blp.arguments(SubjectQuerySchema, location="query")
    @blp.response(200, SubjectSchema(many=True))
    @blp.paginate(page_size=20, max_page_size=100)
    def get(self, me: CurrentUser, query, pagination_parameters):
        """List your subjects: filter, search, sort, paginate (X-Pagination header)."""
        result = subjects.list_subjects(
            me.id,
            **query,
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = result.total
        return result.items

    @blp.login_required
    @blp.arguments(SubjectCreateSchema)
    @blp.response(201, SubjectSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(409, response="CONFLICT")
    def post(self, me: CurrentUser, data):
        """Create a subject. Its name must be new among yours (any case), else 409."""
        subject = subjects.create_subject(me.id, data)
        return subject, {"Location": url_for("subjects.SubjectById", subject_id=subject.id)}


@blp.route(f"/{SUBJECT_ID}")
class SubjectById(MethodView):
    @blp.login_required
    @blp.etag
    @blp.response(200, SubjectSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser, subject_id):
        """One of your subjects, with its ETag (If-None-Match → 304)."""
        return subjects.get_subject(me.id, subject_id)

    @blp.login_required
    @blp.etag
    @blp.arguments(SubjectUpdateSchema)
    @blp.response(200, SubjectSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, me: CurrentUser, changes, subject_id):
        """Change any of name, description, color, is_archived.

        If-Match is optional; when sent, it must be the current ETag (else 412).
        """
        subject = subjects.get_subject(me.id, subject_id, for_update=True)
        blp.check_etag(subject, SubjectSchema)
        return subjects.update_subject(subject, changes)

    @blp.login_required
    @blp.etag
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, me: CurrentUser, subject_id):
        """Delete a subject for good. If-Match is optional (412 when stale)."""
        subject = subjects.get_subject(me.id, subject_id, for_update=True)
        blp.check_etag(subject, SubjectSchema)
        subjects.delete_subject(subject)
