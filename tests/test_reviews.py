"""Reviews: FSRS through the API against the fsrs package itself, the exam cap, undo,
offline reviews, Idempotency-Key; another user's card is 404."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import fsrs
import pytest
from fsrs.scheduler import FUZZ_RANGES

from eleva.core.study import StudySettings, exam_cap
from tests.conftest import assert_error_shape
from tests.test_cards import CARDS, make_card, make_subject

ME = "/api/v1/users/me"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def review(client, user, card_id, rating, at=None, *, status=201, headers=None, **extra):
    body = {"rating": rating, **extra}
    if at is not None:
        body["reviewed_at"] = iso(at)
    response = client.post(
        f"{CARDS}{card_id}/reviews", json=body, headers={**user.headers, **(headers or {})}
    )
    assert response.status_code == status, response.json
    return response.json


def scheduler(retention=0.9, fuzz=True) -> fsrs.Scheduler:
    return fsrs.Scheduler(
        desired_retention=retention,
        learning_steps=(timedelta(minutes=1), timedelta(minutes=10)),
        relearning_steps=(timedelta(minutes=10),),
        maximum_interval=36500,
        enable_fuzzing=fuzz,
    )


def fuzz_range(days: int) -> tuple[int, int]:
    """The intervals the fsrs package's fuzz can give (its FUZZ_RANGES): it draws
    round(random() * (max - min + 1) + min), so max + 1 too."""
    if days < 2.5:
        return days, days
    delta = 1.0 + sum(
        r["factor"] * max(min(float(days), r["end"]) - r["start"], 0.0) for r in FUZZ_RANGES
    )
    low, high = max(2, round(days - delta)), min(round(days + delta), 36500)
    return min(low, high), min(high + 1, 36500)


STATES = {fsrs.State.Learning: "learning", fsrs.State.Review: "review",
          fsrs.State.Relearning: "relearning"}  # fmt: skip

DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)
# (rating, time since the previous review): lapses, relearning, every rating.
SEQUENCES = {
    "good path": [(3, 0), (3, MINUTE), (3, 10 * MINUTE), (3, 3 * DAY), (3, 9 * DAY),
                  (3, 30 * DAY)],
    "lapse and relearn": [(3, 0), (3, 10 * MINUTE), (3, 4 * DAY), (1, 12 * DAY),
                          (3, 10 * MINUTE), (2, 2 * DAY), (4, 7 * DAY), (1, 40 * DAY),
                          (1, 10 * MINUTE), (3, 10 * MINUTE)],
    "easy first": [(4, 0), (4, 15 * DAY), (2, 30 * DAY), (3, 60 * DAY)],
    "again in learning": [(1, 0), (1, MINUTE), (2, MINUTE), (2, 6 * MINUTE), (3, DAY),
                          (3, 2 * DAY), (1, 5 * DAY), (2, 10 * MINUTE), (4, DAY)],
    "hard days": [(2, 0), (2, 6 * MINUTE), (2, DAY), (2, 2 * DAY), (2, 5 * DAY),
                  (2, 11 * DAY)],
    "same day reviews": [(3, 0), (3, 10 * MINUTE), (3, DAY), (1, 2 * MINUTE),
                         (3, 3 * MINUTE), (4, 5 * MINUTE)],
}  # fmt: skip


def replay(client, user, card_id, steps, start, *, draws=None):
    """Each review through the API and through the fsrs package; yields both. ``draws``
    (a monkeypatch): the package's fuzz gets the same random number in both."""
    reference = fsrs.Card(card_id=card_id, due=start)
    at = start
    rng = random.Random(29)
    for rating, gap in steps:
        at = at + (gap or timedelta(0))
        if draws is not None:
            draw = rng.random()
            draws.setattr(fsrs.scheduler, "random", lambda draw=draw: draw)
        answer = review(client, user, card_id, rating, at)
        reference, _ = scheduler().review_card(reference, fsrs.Rating(rating), at)
        yield answer, reference, at


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_reviews_schedule_as_the_fsrs_package_does(client, user, name):
    """State, stability and difficulty exactly; due within the package's fuzz range of
    the unfuzzed interval (intervals in whole days from the review)."""
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)
    unfuzzed = scheduler(fuzz=False)
    previous = fsrs.Card(card_id=card["id"], due=start)
    lapses = 0
    for n, (answer, reference, at) in enumerate(
        replay(client, user, card["id"], SEQUENCES[name], start), 1
    ):
        got = answer["card"]
        assert got["state"] == STATES[reference.state]
        assert math.isclose(got["stability"], reference.stability, rel_tol=1e-12)
        assert math.isclose(got["difficulty"], reference.difficulty, rel_tol=1e-12)
        assert got["reps"] == n
        assert parse(got["last_review_at"]) == at
        plain, _ = unfuzzed.review_card(previous, answer_rating(answer), at)
        if reference.state == fsrs.State.Review:
            low, high = fuzz_range((plain.due - at).days)
            assert low <= (parse(got["due"]) - at).days <= high
            assert parse(got["due"]) - at == timedelta(days=(parse(got["due"]) - at).days)
        else:
            assert parse(got["due"]) == plain.due  # learning steps are never fuzzed
        assert answer["review"]["state"] == got["state"]
        assert answer["review"]["due"] == got["due"]
        assert answer["review"]["reviewed_at"] == got["last_review_at"]
        lapses += previous.state == fsrs.State.Review and answer["review"]["rating"] == 1
        assert got["lapses"] == lapses
        previous = reference


def answer_rating(answer) -> fsrs.Rating:
    return fsrs.Rating(answer["review"]["rating"])


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_with_the_same_random_draws_due_is_the_packages_to_the_microsecond(
    client, user, monkeypatch, name
):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    start = datetime.now(UTC) - timedelta(days=300)
    steps = SEQUENCES[name]
    for answer, reference, _at in replay(client, user, card["id"], steps, start, draws=monkeypatch):
        assert parse(answer["card"]["due"]) == reference.due
        assert answer["card"]["stability"] == reference.stability
        assert answer["card"]["difficulty"] == reference.difficulty


def test_desired_retention_is_the_users(client, user, monkeypatch):
    assert client.patch(ME, json={"study": {"desired_retention": 0.8}},
                        headers=user.headers).status_code == 200  # fmt: skip
    monkeypatch.setattr(fsrs.scheduler, "random", lambda: 0.5)
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    at = datetime.now(UTC) - timedelta(days=100)
    review(client, user, card["id"], 4, at)
    got = review(client, user, card["id"], 3, at + timedelta(days=20))["card"]
    reference, _ = scheduler(0.8).review_card(fsrs.Card(card_id=1, due=at), fsrs.Rating(4), at)
    reference, _ = scheduler(0.8).review_card(reference, fsrs.Rating(3), at + timedelta(days=20))
    assert parse(got["due"]) == reference.due
    at90, _ = scheduler(0.9).review_card(
        scheduler(0.9).review_card(fsrs.Card(card_id=1, due=at), fsrs.Rating(4), at)[0],
        fsrs.Rating(3),
        at + timedelta(days=20),
    )
    assert reference.due > at90.due  # lower retention: longer intervals


# -- the exam cap ------------------------------------------------------------------------------


def test_an_exam_date_caps_due_at_the_start_of_the_day_before(client, user):
    client.patch(ME, json={"study": {"timezone": "Europe/Paris", "day_starts_at_hour": 4}},
                 headers=user.headers)  # fmt: skip
    exam = (datetime.now(UTC) + timedelta(days=3)).date()
    sid = make_subject(client, user, exam_date=exam.isoformat())
    card = make_card(client, user, sid)
    at = datetime.now(UTC) - timedelta(minutes=5)
    got = review(client, user, card["id"], 4, at)["card"]  # easy: FSRS says days away
    cap = exam_cap(exam, StudySettings("Europe/Paris", 4))
    uncapped, _ = scheduler(fuzz=False).review_card(
        fsrs.Card(card_id=1, due=at), fsrs.Rating(4), at
    )
    assert uncapped.due > cap + timedelta(days=3)
    assert parse(got["due"]) == cap
    assert math.isclose(got["stability"], uncapped.stability)
    assert math.isclose(got["difficulty"], uncapped.difficulty)
    # A learning step shorter than the time left is not touched.
    card2 = make_card(client, user, sid)
    got2 = review(client, user, card2["id"], 1, at)["card"]
    assert parse(got2["due"]) == at + timedelta(minutes=1)


def test_after_the_cap_moment_fsrs_schedules_freely(client, user):
    exam = datetime.now(UTC).date()  # the exam is today: the cap moment was yesterday
    sid = make_subject(client, user, exam_date=exam.isoformat())
    card = make_card(client, user, sid)
    at = datetime.now(UTC)
    got = review(client, user, card["id"], 4, at)["card"]
    assert parse(got["due"]) > at + timedelta(days=3)
    # Clearing the date (PATCH null) lifts the cap for the next reviews.
    other = make_subject(client, user, "Later", exam_date=(exam + timedelta(days=9)).isoformat())
    patched = client.patch(f"/api/v1/subjects/{other}", json={"exam_date": None},
                           headers=user.headers)  # fmt: skip
    assert patched.status_code == 200 and patched.json["exam_date"] is None


# -- undo --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "rating"),
    [
        ([], 1), ([], 2), ([], 3), ([], 4),  # new
        ([(1, 0)], 3), ([(3, 0)], 1),  # learning
        ([(4, 0)], 1), ([(4, 0)], 3), ([(4, 0)], 2),  # review (a lapse, a success)
        ([(4, 0), (1, 20 * DAY)], 3), ([(4, 0), (1, 20 * DAY)], 1),  # relearning
    ],
)  # fmt: skip
def test_undo_gives_back_the_card_exactly(client, user, setup, rating):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    at = datetime.now(UTC) - timedelta(days=200)
    for earlier, gap in setup:
        at += gap or timedelta(0)
        review(client, user, card["id"], earlier, at)
    before = client.get(f"{CARDS}{card['id']}", headers=user.headers)
    reviews_before = client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json
    review(client, user, card["id"], rating, at + 3 * DAY)
    undone = client.delete(f"{CARDS}{card['id']}/reviews/last", headers=user.headers)
    assert undone.status_code == 200
    assert undone.json == before.json
    after = client.get(f"{CARDS}{card['id']}", headers=user.headers)
    assert after.json == before.json and after.headers["ETag"] == before.headers["ETag"]
    assert client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json == reviews_before


def test_undo_walks_back_the_whole_history_then_404(client, user):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    fresh = client.get(f"{CARDS}{card['id']}", headers=user.headers).json
    at = datetime.now(UTC) - timedelta(days=200)
    for rating, gap in SEQUENCES["lapse and relearn"]:
        at += gap or timedelta(0)
        review(client, user, card["id"], rating, at)
    for _ in SEQUENCES["lapse and relearn"]:
        assert (
            client.delete(f"{CARDS}{card['id']}/reviews/last", headers=user.headers).status_code
            == 200
        )
    assert client.get(f"{CARDS}{card['id']}", headers=user.headers).json == fresh
    assert_error_shape(
        client.delete(f"{CARDS}{card['id']}/reviews/last", headers=user.headers), 404
    )


# -- offline reviews, validation ---------------------------------------------------------------


def test_offline_reviews_in_order_and_out_of_order(client, user):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    # A card made and studied offline: reviews earlier than its creation on the server.
    t0 = datetime.now(UTC) - timedelta(days=3)
    review(client, user, card["id"], 3, t0)
    review(client, user, card["id"], 3, t0 + 10 * MINUTE)
    body = review(client, user, card["id"], 1, t0 + MINUTE, status=422)
    assert body["errors"] == {"json": {"reviewed_at": [body["message"]]}}
    same_moment = review(client, user, card["id"], 3, t0 + 10 * MINUTE)
    assert same_moment["review"]["reviewed_at"] == iso(t0 + 10 * MINUTE)
    now = datetime.now(UTC)
    review(client, user, card["id"], 3, now + timedelta(seconds=50))  # a fast clock: fine
    body = review(client, user, card["id"], 3, now + timedelta(seconds=120), status=422)
    assert "reviewed_at" in body["errors"]["json"]
    listed = client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json
    assert [r["rating"] for r in listed] == [3, 3, 3, 3]


@pytest.mark.parametrize(
    "body",
    [{}, {"rating": 0}, {"rating": 5}, {"rating": "3"}, {"rating": True}, {"rating": 3.0},
     {"rating": 3, "duration_ms": -1}, {"rating": 3, "duration_ms": 3_600_001},
     {"rating": 3, "reviewed_at": "2026-01-01T10:00:00"},  # no offset
     {"rating": 3, "reviewed_at": "yesterday"}, {"rating": 3, "state": "review"},
     {"rating": 3, "stability": 100}],
)  # fmt: skip
def test_review_validation(client, user, body):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    response = client.post(f"{CARDS}{card['id']}/reviews", json=body, headers=user.headers)
    assert_error_shape(response, 422)
    assert client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json == []


def test_reviews_list_pages_oldest_first(client, user):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    at = datetime.now(UTC) - timedelta(days=30)
    for i in range(5):
        review(client, user, card["id"], 3, at + i * DAY, duration_ms=1000 * i)
    page = client.get(f"{CARDS}{card['id']}/reviews?page=2&page_size=2", headers=user.headers)
    assert page.status_code == 200
    assert [r["duration_ms"] for r in page.json] == [2000, 3000]
    assert (
        '"total": 5' in page.headers["X-Pagination"] or '"total":5' in page.headers["X-Pagination"]
    )
    first = client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json[0]
    assert set(first) == {"id", "card_id", "rating", "reviewed_at", "duration_ms", "state", "due"}


# -- Idempotency-Key ---------------------------------------------------------------------------


def test_a_retry_with_the_same_key_records_nothing_more(client, user, other):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    key = {"Idempotency-Key": "9f1c2d3e-retry-1"}
    first = client.post(
        f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers={**user.headers, **key}
    )
    assert first.status_code == 201
    again = client.post(
        f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers={**user.headers, **key}
    )
    assert again.status_code == 201 and again.json == first.json
    assert len(client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json) == 1
    # The same key with another request: refused, nothing recorded.
    other_body = client.post(f"{CARDS}{card['id']}/reviews", json={"rating": 1},
                             headers={**user.headers, **key})  # fmt: skip
    body = assert_error_shape(other_body, 422)
    assert set(body["errors"]["headers"]) == {"Idempotency-Key"}
    assert len(client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json) == 1
    # Another user's key space is their own.
    osid = make_subject(client, other)
    ocard = make_card(client, other, osid)
    mine = client.post(
        f"{CARDS}{ocard['id']}/reviews", json={"rating": 3}, headers={**other.headers, **key}
    )
    assert mine.status_code == 201 and mine.json["card"]["id"] == ocard["id"]
    # Without a key, every request is a review.
    review(client, user, card["id"], 3)
    assert len(client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json) == 2


def test_a_key_expires_after_24_hours(app, client, user, monkeypatch, runner):
    from eleva.services import study

    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    key = {"Idempotency-Key": "k-24h"}
    first = client.post(
        f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers={**user.headers, **key}
    )
    later = datetime.now(UTC) + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(study, "utcnow", lambda: later)
    second = client.post(
        f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers={**user.headers, **key}
    )
    assert second.status_code == 201 and second.json["review"]["id"] != first.json["review"]["id"]
    assert len(client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json) == 2
    # The prune deletes keys older than a day.
    monkeypatch.setattr(study, "utcnow", lambda: later + timedelta(hours=25))
    result = runner.invoke(args=["study", "prune"])
    assert result.exit_code == 0 and "1 idempotency key" in result.output


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "é"])
def test_a_malformed_key_is_a_header_error(client, user, value):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    response = client.post(f"{CARDS}{card['id']}/reviews", json={"rating": 3},
                           headers={**user.headers, "Idempotency-Key": value})  # fmt: skip
    body = assert_error_shape(response, 422)
    assert "Idempotency-Key" in body["errors"]["headers"]


# -- another user's card ----------------------------------------------------------------------


def test_another_users_card_is_not_found_at_every_review_route(client, user, other):
    osid = make_subject(client, other)
    ocard = make_card(client, other, osid)
    review(client, other, ocard["id"], 3)
    for method, path, body in [
        ("post", f"{CARDS}{ocard['id']}/reviews", {"rating": 3}),
        ("get", f"{CARDS}{ocard['id']}/reviews", None),
        ("delete", f"{CARDS}{ocard['id']}/reviews/last", None),
        ("post", f"{CARDS}999999/reviews", {"rating": 3}),
    ]:
        assert_error_shape(
            client.open(path, method=method.upper(), json=body, headers=user.headers), 404
        )
    assert len(client.get(f"{CARDS}{ocard['id']}/reviews", headers=other.headers).json) == 1
