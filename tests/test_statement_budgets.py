"""Statements per request, endpoint by endpoint: a budget each, the same with 1 row as
with 200 (what each statement looks like is the services' business, not these tests')."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eleva.data.db import db
from eleva.data.models import Subject

ME = "/api/v1/users/me"
SUBJECTS = "/api/v1/subjects/"

# (method, path, JSON body, statements). {sid}: one of the caller's subjects.
BUDGETS = [
    ("get", ME, None, 1),  # the caller, through a live session
    ("get", SUBJECTS, None, 2),  # the caller; the page with its total
    ("get", SUBJECTS + "?q=s&archived=all&sort=name", None, 2),
    ("get", SUBJECTS + "{sid}", None, 2),  # the caller; the subject
    ("post", SUBJECTS, {"name": "New one"}, 2),  # the caller; the insert
    ("patch", SUBJECTS + "{sid}", {"description": "x"}, 3),  # caller; lock; update
    ("delete", SUBJECTS + "{sid}", None, 3),  # caller; lock; delete
    ("patch", ME, {"bio": "hi"}, 3),  # caller; lock; update
    ("get", "/api/v1/users/nobody", None, 2),  # caller; the profile
    ("get", ME + "/sessions", None, 2),  # caller; the page with its total
    ("delete", ME + "/sessions", None, 2),  # caller; one UPDATE ends the others
]


@pytest.mark.parametrize("n_subjects", [1, 200])
@pytest.mark.parametrize(("method", "path", "body", "budget"), BUDGETS)
def test_statements_per_request(
    app, client, user, count_queries, n_subjects, method, path, body, budget
):
    now = datetime.now(UTC)
    with app.app_context():
        db.session.execute(
            Subject.__table__.insert(),
            [
                {"owner_id": user.id, "name": f"S{i}", "created_at": now, "updated_at": now}
                for i in range(n_subjects)
            ],
        )
        db.session.commit()
        sid = db.session.scalar(db.select(Subject.id).where(Subject.owner_id == user.id).limit(1))
    with count_queries() as statements:
        response = client.open(
            path.format(sid=sid), method=method.upper(), json=body, headers=user.headers
        )
    assert response.status_code < 300 or response.status_code == 404, response.json
    assert len(statements) == budget, statements
