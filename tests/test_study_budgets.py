"""Statements per study request: a budget each, the same with 1 card and review as with
200 of each (the queue's and the stats' too: they aggregate in the database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eleva.data.db import db
from eleva.data.models import Card, Review, Subject, User
from tests.conftest import ON_POSTGRES
from tests.test_schemas import fast_dump, marshmallow_dump

SUBJECTS = "/api/v1/subjects/"
CARDS = "/api/v1/cards/"

# (method, path, JSON body, headers, statements). {sid}: the caller's subject holding
# every card; {cid}: a card with every review; {nid}: a note of {sid}.
BUDGETS = [
    ("get", SUBJECTS + "{sid}/cards", None, {}, 3),  # caller; subject; the page with its total
    ("get", SUBJECTS + "{sid}/cards?state=review&state=new&suspended=false&sort=-due", None, {}, 3),
    ("post", SUBJECTS + "{sid}/cards", {"front": "Q"}, {}, 3),  # caller; subject; insert
    ("post", SUBJECTS + "{sid}/cards", {"front": "Q", "note_id": "{nid}"}, {}, 4),  # + the note
    # caller; subject; the cards in one INSERT … RETURNING in order (PostgreSQL; SQLite,
    # which cannot promise the order of a multi-row RETURNING, inserts them one by one)
    (
        "post",
        SUBJECTS + "{sid}/cards/bulk",
        {"cards": [{"front": "Q"}] * 50},
        {},
        3 if ON_POSTGRES else 52,
    ),
    ("get", CARDS + "{cid}", None, {}, 2),  # caller; the card
    ("patch", CARDS + "{cid}", {"back": "A"}, {}, 3),  # caller; lock; update
    ("delete", CARDS + "{cid}", None, {}, 3),  # caller; lock; delete (reviews: cascade)
    # caller; lock the card (with its subject's exam date); update it; insert the review
    ("post", CARDS + "{cid}/reviews", {"rating": 3}, {}, 4),
    # + the key looked up, and kept
    ("post", CARDS + "{cid}/reviews", {"rating": 3}, {"Idempotency-Key": "k1"}, 6),
    ("get", CARDS + "{cid}/reviews?page_size=5", None, {}, 3),  # caller; the card; the page
    ("delete", CARDS + "{cid}/reviews/last", None, {}, 5),  # caller; lock; last; update; delete
    ("get", "/api/v1/reviews/queue", None, {}, 3),  # caller; the counts; the cards
    ("get", "/api/v1/reviews/queue?subject_id={sid}&limit=200", None, {}, 3),
    ("get", "/api/v1/reviews/stats", None, {}, 5),  # caller; days; streak; forecast; states
    ("get", "/api/v1/reviews/stats?days=365&subject_id={sid}", None, {}, 5),
]


def seed(app, user, n: int) -> tuple[int, int]:
    now = datetime.now(UTC)
    with app.app_context():
        sid = db.session.scalar(
            Subject.__table__.insert()
            .values(owner_id=user.id, name="S", created_at=now, updated_at=now)
            .returning(Subject.__table__.c.id)
        )
        states = ("new", "learning", "review", "relearning")
        db.session.execute(
            Card.__table__.insert(),
            [
                {"owner_id": user.id, "subject_id": sid, "front": f"Q{i}", "back": "A",
                 "state": states[i % 4], "stability": None if i % 4 == 0 else 3.0,
                 "difficulty": None if i % 4 == 0 else 5.0, "step": 0 if i % 2 else None,
                 "due": now - timedelta(hours=i), "created_at": now, "updated_at": now,
                 "suspended": i % 7 == 6}
                for i in range(n)
            ],
        )  # fmt: skip
        cid = db.session.scalar(db.select(Card.id).where(Card.owner_id == user.id).limit(1))
        db.session.execute(
            Review.__table__.insert(),
            [
                {"owner_id": user.id, "card_id": cid, "rating": 1 + i % 4,
                 "reviewed_at": now - timedelta(days=n - i, hours=1), "duration_ms": 5000,
                 "before_state": "review", "before_due": now, "before_reps": i,
                 "before_lapses": 0, "state": "review", "stability": 3.0, "difficulty": 5.0,
                 "due": now, "created_at": now}
                for i in range(n)
            ],
        )  # fmt: skip
        db.session.commit()
    return sid, cid


@pytest.mark.parametrize("n", [1, 200])
@pytest.mark.parametrize(("method", "path", "body", "headers", "budget"), BUDGETS)
def test_statements_per_study_request(
    app, client, user, count_queries, n, method, path, body, headers, budget
):
    sid, cid = seed(app, user, n)
    nid = client.post(f"{SUBJECTS}{sid}/notes", json={"title": "N"}, headers=user.headers).json[
        "id"
    ]
    if body and body.get("note_id") == "{nid}":
        body = {**body, "note_id": nid}
    with count_queries() as statements:
        response = client.open(
            path.format(sid=sid, cid=cid),
            method=method.upper(),
            json=body,
            headers={**user.headers, **headers},
        )
    assert response.status_code < 300, response.json
    assert len(statements) == budget, statements


def test_the_study_response_schemas_match_marshmallow(app, client, user):
    from eleva.services import study
    from eleva.study.schemas import CardSchema, QueueSchema, ReviewSchema, StatsSchema

    _sid, cid = seed(app, user, 8)
    client.post(
        f"{CARDS}{cid}/reviews", json={"rating": 3, "duration_ms": 10}, headers=user.headers
    )
    with app.test_request_context():
        cards = db.session.scalars(db.select(Card)).all()
        reviews = db.session.scalars(db.select(Review)).all()
        settings = db.session.get(User, user.id).study
        cases = [
            (CardSchema(many=True), cards),
            (ReviewSchema(many=True), reviews),
            (QueueSchema(), study.queue(user.id, settings)),
            (StatsSchema(), study.stats(user.id, settings, days=3)),
        ]
        for schema, obj in cases:
            assert fast_dump(schema, obj) == marshmallow_dump(schema, obj), type(schema)
        db.session.rollback()
