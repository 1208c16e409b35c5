"""Statements per request, endpoint by endpoint: a budget each, the same with 1 row as
with 200 (what each statement looks like is the services' business, not these tests').
A list's page past its end costs one statement more (a count: no row carries the total)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eleva.data.db import db
from eleva.data.models import Document, Note, Subject

ME = "/api/v1/users/me"
SUBJECTS = "/api/v1/subjects/"
NOTES = "/api/v1/notes/"

# (method, path, JSON body, statements). {sid}: one of the caller's subjects, {sid2}
# another; {nid}: a note in {sid}. Each subject has as many notes as the caller subjects.
BUDGETS = [
    ("get", ME, None, 1),  # the caller, through a live session
    ("get", SUBJECTS, None, 2),  # the caller; the page with its total
    ("get", SUBJECTS + "?q=s&archived=all&sort=name", None, 2),
    ("get", SUBJECTS + "{sid}", None, 2),  # the caller; the subject
    ("post", SUBJECTS, {"name": "New one"}, 2),  # the caller; the insert
    ("patch", SUBJECTS + "{sid}", {"description": "x"}, 3),  # caller; lock; update
    # caller; lock; its documents; its notes' bytes freed; delete (notes: cascade)
    ("delete", SUBJECTS + "{sid}", None, 5),
    ("patch", ME, {"bio": "hi"}, 3),  # caller; lock; update
    ("get", "/api/v1/users/nobody", None, 2),  # caller; the profile
    ("get", SUBJECTS + "{sid}/notes", None, 3),  # the caller; the subject; the page and total
    ("get", SUBJECTS + "{sid}/notes?sort=title&page=3", None, 4),  # + a count past the end
    # caller; subject; the bytes counted in the quota; insert
    ("post", SUBJECTS + "{sid}/notes", {"title": "T", "body": "*b*"}, 4),
    ("get", NOTES + "{nid}", None, 2),  # the caller; the note
    ("patch", NOTES + "{nid}", {"body": "x"}, 4),  # caller; lock; bytes counted; update
    # caller; lock; subject; its cards left behind unlinked; bytes; update
    ("patch", NOTES + "{nid}", {"subject_id": "{sid2}"}, 6),
    ("delete", NOTES + "{nid}", None, 4),  # caller; lock; bytes freed; delete
    ("get", ME + "/sessions", None, 2),  # caller; the page with its total
    ("delete", ME + "/sessions", None, 2),  # caller; one UPDATE ends the others
    ("get", ME + "/export", None, 2),  # caller; the latest export
    ("get", ME + "/export/download", None, 2),  # caller; the latest ready export
    # caller; then PostgreSQL: a planner setting, the matches with their total, the
    # page's snippets; SQLite: the matches with their total, the snippets
    ("get", "/api/v1/search?q=s", None, 4),
]


@pytest.mark.parametrize("n_subjects", [1, 200])
@pytest.mark.parametrize(("method", "path", "body", "budget"), BUDGETS)
def test_statements_per_request(
    app, client, user, count_queries, n_subjects, method, path, body, budget
):
    now = datetime.now(UTC)
    moving = bool(body) and body.get("subject_id") == "{sid2}"
    with app.app_context():
        db.session.execute(
            Subject.__table__.insert(),
            [
                {"owner_id": user.id, "name": f"S{i}", "created_at": now, "updated_at": now}
                # A move needs a second subject to go to, whatever n_subjects says.
                for i in range(max(n_subjects, 2 if moving else 1))
            ],
        )
        db.session.commit()
        sid, *others = db.session.scalars(
            db.select(Subject.id).where(Subject.owner_id == user.id).order_by(Subject.id).limit(2)
        ).all()
        db.session.execute(
            Note.__table__.insert(),
            [
                {"owner_id": user.id, "subject_id": sid, "title": f"N{i}", "body": "b" * 500,
                 "excerpt": "b" * 200, "size": len(f"N{i}") + 500, "created_at": now,
                 "updated_at": now}
                for i in range(n_subjects)
            ],
        )  # fmt: skip
        db.session.commit()
        nid = db.session.scalar(db.select(Note.id).where(Note.subject_id == sid).limit(1))
    if moving:
        body = {"subject_id": others[0]}
    with count_queries() as statements:
        response = client.open(
            path.format(sid=sid, nid=nid), method=method.upper(), json=body, headers=user.headers
        )
    assert response.status_code < 300 or response.status_code == 404, response.json
    assert len(statements) <= budget, statements


DOCS = "/api/v1/documents/"
# {sid}: a subject holding every document; {did}: one of them.
DOCUMENT_BUDGETS = [
    ("get", SUBJECTS + "{sid}/documents", None, 3),  # caller; subject; the page and total
    ("get", SUBJECTS + "{sid}/documents?sort=-size&page=2", None, 4),  # + a count past the end
    ("get", DOCS + "{did}", None, 2),  # the caller; the document
    ("patch", DOCS + "{did}", {"title": "x"}, 3),  # caller; lock; update
    ("patch", DOCS + "{did}", {"subject_id": "{sid}"}, 3),  # same subject: no lookup
    ("delete", DOCS + "{did}", None, 4),  # caller; lock; the bytes freed; delete
    ("get", DOCS + "{did}/download", None, 2),  # caller; the document
    ("get", ME + "/storage", None, 2),  # caller; the counters
    # caller; lock; documents; their bytes freed; notes' bytes freed; delete
    ("delete", SUBJECTS + "{sid}", None, 6),
]


@pytest.mark.parametrize("n_documents", [1, 200])
@pytest.mark.parametrize(("method", "path", "body", "budget"), DOCUMENT_BUDGETS)
def test_document_statements_per_request(
    app, client, user, count_queries, n_documents, method, path, body, budget
):
    now = datetime.now(UTC)
    with app.app_context():
        sid = db.session.scalar(
            Subject.__table__.insert()
            .values(owner_id=user.id, name="S", created_at=now, updated_at=now)
            .returning(Subject.__table__.c.id)
        )
        db.session.execute(
            Document.__table__.insert(),
            [
                {
                    "owner_id": user.id,
                    "subject_id": sid,
                    "title": f"D{i}",
                    "filename": f"d{i}.pdf",
                    "content_type": "application/pdf",
                    "size": 10,
                    "storage_key": f"documents/{user.id}/{i:032x}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n_documents)
            ],
        )
        db.session.commit()
        did = db.session.scalar(db.select(Document.id).limit(1))
    if isinstance(body, dict) and body.get("subject_id") == "{sid}":
        body = {"subject_id": sid}
    with count_queries() as statements:
        response = client.open(
            path.format(sid=sid, did=did), method=method.upper(), json=body, headers=user.headers
        )
    assert response.status_code < 300, response.json
    assert len(statements) <= budget, statements
