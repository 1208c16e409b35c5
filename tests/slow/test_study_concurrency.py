"""Reviews of one card at the same moment, over real HTTP against gunicorn with two
workers: none is lost, each is chained to the one before it, and a key sent many times
at once records one review."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import requires_postgres
from tests.slow.support import Api, Server, libpq_dsn, simultaneously

pytestmark = [pytest.mark.slow, requires_postgres]


@pytest.fixture(scope="module")
def server(new_database, gunicorn) -> Server:
    database = new_database()
    server = gunicorn(database_url=libpq_dsn(database), workers=2)
    server.database = database
    return server


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    offset = server.log_size()
    yield Api(server.base_url)
    assert server.failures_since(offset) == [], "the server answered 5xx or logged a traceback"


def a_card(api: Api):
    account = api.account("student")
    subject = api.post("/api/v1/subjects/", json={"name": "Maths"}, headers=account.headers)
    card = api.post(
        f"/api/v1/subjects/{subject.json()['id']}/cards",
        json={"front": "Q"},
        headers=account.headers,
    )
    assert card.status_code == 201
    return account, card.json()["id"]


def test_simultaneous_reviews_of_one_card_are_all_recorded_and_chained(api, server):
    account, card_id = a_card(api)
    ratings = [1 + i % 4 for i in range(24)]
    responses = simultaneously(
        len(ratings),
        lambda i: api.post(
            f"/api/v1/cards/{card_id}/reviews", json={"rating": ratings[i]}, headers=account.headers
        ),
    )
    assert Counter(r.status_code for r in responses) == {201: len(ratings)}
    card = api.get(f"/api/v1/cards/{card_id}", headers=account.headers).json()
    assert card["reps"] == len(ratings)
    with psycopg.connect(libpq_dsn(server.database)) as conn:
        rows = conn.execute(
            "SELECT before_state, before_due, before_reps, before_last_review_at, state, due,"
            " reviewed_at, before_lapses, rating FROM reviews WHERE card_id = %s ORDER BY id",
            (card_id,),
        ).fetchall()
    assert len(rows) == len(ratings)
    previous = None
    for n, row in enumerate(rows):
        assert row[2] == n  # reps before: every earlier review counted
        if previous is not None:
            # What the card was before this review is what the previous one left.
            assert (row[0], row[1], row[3]) == (previous[4], previous[5], previous[6])
            assert row[6] >= previous[6]
        previous = row
    assert card["state"] == rows[-1][4]
    assert Counter(r.json()["review"]["id"] for r in responses).most_common(1)[0][1] == 1


def test_one_key_sent_many_times_at_once_records_one_review(api, server):
    account, card_id = a_card(api)
    headers = {**account.headers, "Idempotency-Key": "same-key-everywhere"}
    responses = simultaneously(
        16,
        lambda _i: api.post(
            f"/api/v1/cards/{card_id}/reviews", json={"rating": 3}, headers=headers
        ),
    )
    assert Counter(r.status_code for r in responses) == {201: 16}
    assert len({r.text for r in responses}) == 1
    reviews = api.get(f"/api/v1/cards/{card_id}/reviews", headers=account.headers).json()
    assert len(reviews) == 1
    assert api.get(f"/api/v1/cards/{card_id}", headers=account.headers).json()["reps"] == 1
