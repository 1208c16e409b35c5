"""The review queue and study statistics, at chosen moments (the services' clock set),
in the user's time zone and study day, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from eleva.core.study import StudySettings, day_start
from tests.conftest import assert_error_shape
from tests.test_cards import CARDS, SUBJECTS, make_subject

ME = "/api/v1/users/me"
QUEUE = "/api/v1/reviews/queue"
STATS = "/api/v1/reviews/stats"


class Clock:
    """The services' clock, set by the test."""

    def __init__(self, monkeypatch, now: datetime) -> None:
        from eleva.services import cards, study

        self.now = now
        for module in (cards, study):
            monkeypatch.setattr(module, "utcnow", lambda: self.now)

    def advance(self, **kwargs) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def settings(client, user, **study):
    response = client.patch(ME, json={"study": study}, headers=user.headers)
    assert response.status_code == 200, response.json
    return response.json["study"]


def bulk(client, user, sid, n, prefix="Q"):
    response = client.post(f"{SUBJECTS}{sid}/cards/bulk",
                           json={"cards": [{"front": f"{prefix}{i}"} for i in range(n)]},
                           headers=user.headers)  # fmt: skip
    assert response.status_code == 201
    return response.json["ids"]


def rate(client, user, card_id, rating, **extra):
    response = client.post(f"{CARDS}{card_id}/reviews", json={"rating": rating, **extra},
                           headers=user.headers)  # fmt: skip
    assert response.status_code == 201, response.json
    return response.json["card"]


def queue(client, user, query=""):
    response = client.get(f"{QUEUE}{query}", headers=user.headers)
    assert response.status_code == 200, response.json
    return [c["id"] for c in response.json["cards"]], response.json["counts"]


def test_study_settings_on_the_private_view(client, user):
    assert user.body["study"] == {"timezone": "UTC", "day_starts_at_hour": 4,
                                  "new_cards_per_day": 20, "desired_retention": 0.9}  # fmt: skip
    assert settings(client, user, timezone="Europe/Paris") == {
        "timezone": "Europe/Paris", "day_starts_at_hour": 4, "new_cards_per_day": 20,
        "desired_retention": 0.9}  # fmt: skip
    assert settings(client, user, day_starts_at_hour=0, new_cards_per_day=0,
                    desired_retention=0.99)["timezone"] == "Europe/Paris"  # fmt: skip
    assert client.get(ME, headers=user.headers).json["study"]["desired_retention"] == 0.99


@pytest.mark.parametrize(
    "study",
    [{"timezone": "Mars/Olympus"}, {"timezone": "localtime"}, {"timezone": ""},
     {"day_starts_at_hour": 24}, {"day_starts_at_hour": -1}, {"day_starts_at_hour": "4"},
     {"new_cards_per_day": 1001}, {"desired_retention": 0.69}, {"desired_retention": 0.995},
     {"desired_retention": "0.9"}, {"desired_retention": True}, {"unknown": 1}],
)  # fmt: skip
def test_study_settings_validation(client, user, study):
    body = assert_error_shape(client.patch(ME, json={"study": study}, headers=user.headers), 422)
    assert set(body["errors"]["json"]["study"]) == set(study)
    assert client.get(ME, headers=user.headers).json["study"]["timezone"] == "UTC"


def test_the_queue_order_and_counts(client, user, monkeypatch):
    clock = Clock(monkeypatch, datetime(2026, 6, 10, 12, tzinfo=UTC))
    sid = make_subject(client, user)
    review_ids = bulk(client, user, sid, 3, "R")
    dues = {}
    for card_id in review_ids:  # easy: review cards, due in days
        dues[card_id] = rate(client, user, card_id, 4)["due"]
        clock.advance(minutes=1)
    review_ids.sort(key=lambda card_id: (dues[card_id], card_id))  # oldest due first
    learning = bulk(client, user, sid, 2, "L")
    new = bulk(client, user, sid, 4, "N")
    suspended = bulk(client, user, sid, 1, "S")
    client.patch(f"{CARDS}{suspended[0]}", json={"suspended": True}, headers=user.headers)
    rate(client, user, learning[1], 1)  # again: due in 1 minute
    clock.advance(seconds=10)
    rate(client, user, learning[0], 1)
    ids, counts = queue(client, user)
    # Not yet due learning cards are not in the queue; new ones are, in creation order.
    assert ids == new and counts == {"learning": 0, "review": 0, "new": 4}
    clock.advance(days=40)
    ids, counts = queue(client, user)
    assert ids == [learning[1], learning[0], *review_ids, *new]
    assert counts == {"learning": 2, "review": 3, "new": 4}
    # limit cuts the list, not the counts.
    assert queue(client, user, "?limit=3") == ([learning[1], learning[0], review_ids[0]], counts)


def test_new_cards_allowance_per_study_day_across_dst(client, user, monkeypatch):
    """Paris, days from 04:00: 2026-03-29 (clocks forward) starts at 02:00 UTC."""
    settings(client, user, timezone="Europe/Paris", day_starts_at_hour=4, new_cards_per_day=3)
    clock = Clock(monkeypatch, datetime(2026, 3, 28, 22, tzinfo=UTC))  # 23:00 CET, day 28
    sid = make_subject(client, user)
    new = bulk(client, user, sid, 10)
    assert queue(client, user) == (new[:3], {"learning": 0, "review": 0, "new": 3})
    rate(client, user, new[0], 4)
    clock.advance(hours=3)  # 01:00 UTC = 03:00 CEST: still the 28th's study day
    rate(client, user, new[1], 4)
    assert queue(client, user) == ([new[2]], {"learning": 0, "review": 0, "new": 1})
    rate(client, user, new[2], 4)
    assert queue(client, user)[1]["new"] == 0
    clock.now = datetime(2026, 3, 29, 1, 59, tzinfo=UTC)  # 03:59 CEST
    assert queue(client, user)[1]["new"] == 0
    clock.now = datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # 04:00 CEST: a new study day
    assert queue(client, user) == (new[3:6], {"learning": 0, "review": 0, "new": 3})
    # An offline review dated in the previous study day does not use today's allowance.
    rate(client, user, new[3], 3, reviewed_at="2026-03-29T01:30:00+00:00")
    assert queue(client, user)[1]["new"] == 3
    rate(client, user, new[4], 3)
    assert queue(client, user)[1]["new"] == 2
    # Undo gives the allowance back.
    client.delete(f"{CARDS}{new[4]}/reviews/last", headers=user.headers)
    assert queue(client, user)[1]["new"] == 3


def test_new_york_study_day_in_november(client, user, monkeypatch):
    settings(client, user, timezone="America/New_York", day_starts_at_hour=4, new_cards_per_day=1)
    # 2026-11-01: EDT until 06:00 UTC, then EST; its study day starts 04:00 EST = 09:00 UTC.
    clock = Clock(monkeypatch, datetime(2026, 11, 1, 7, 30, tzinfo=UTC))  # 02:30 EST, day Oct 31
    sid = make_subject(client, user)
    new = bulk(client, user, sid, 3)
    rate(client, user, new[0], 4)
    assert queue(client, user)[1]["new"] == 0
    clock.now = datetime(2026, 11, 1, 8, 59, tzinfo=UTC)
    assert queue(client, user)[1]["new"] == 0
    clock.now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert queue(client, user)[1]["new"] == 1


def test_the_queue_by_subject_never_shows_suspended_or_others(client, user, other, monkeypatch):
    Clock(monkeypatch, datetime(2026, 6, 10, 12, tzinfo=UTC))
    a, b = make_subject(client, user, "A"), make_subject(client, user, "B")
    in_a, in_b = bulk(client, user, a, 2), bulk(client, user, b, 2)
    osid = make_subject(client, other)
    bulk(client, other, osid, 5)
    assert queue(client, user, f"?subject_id={a}")[0] == in_a
    assert queue(client, user, f"?subject_id={a}&subject_id={b}")[0] == in_a + in_b
    assert queue(client, user, f"?subject_id={osid}") == (
        [],
        {"learning": 0, "review": 0, "new": 0},
    )
    assert queue(client, other)[1]["new"] == 5
    client.patch(f"{CARDS}{in_a[0]}", json={"suspended": True}, headers=user.headers)
    assert queue(client, user)[0] == [in_a[1], *in_b]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "subject_id=x", "subject_id=0"])
def test_queue_validation(client, user, query):
    assert_error_shape(client.get(f"{QUEUE}?{query}", headers=user.headers), 422)


def test_stats(client, user, monkeypatch):
    settings(client, user, timezone="Europe/Paris", day_starts_at_hour=4)
    paris = StudySettings("Europe/Paris", 4)
    clock = Clock(monkeypatch, datetime(2026, 3, 20, 12, tzinfo=UTC))
    sid = make_subject(client, user)
    other_sid = make_subject(client, user, "Other")
    cards = bulk(client, user, sid, 4)
    elsewhere = bulk(client, user, other_sid, 1)
    # Day by day: 03-20 (two reviews), 03-21 none, then each day from 03-27 to 03-29.
    rate(client, user, cards[0], 4, duration_ms=60_000)
    rate(client, user, cards[1], 3, duration_ms=30_000)
    for day, hour in ((27, 12), (28, 12), (29, 3)):  # 03-29 03:00 UTC = 05:00 CEST
        clock.now = datetime(2026, 3, day, hour, tzinfo=UTC)
        rate(client, user, cards[2], 1 if day == 27 else 3, duration_ms=6_000)
    clock.now = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST: still the 28th's day
    rate(client, user, elsewhere[0], 2, reviewed_at="2026-03-29T01:30:00+00:00")
    clock.now = datetime(2026, 3, 29, 12, tzinfo=UTC)
    # A review-state card rated again: retention counts it.
    rate(client, user, cards[0], 1, reviewed_at="2026-03-29T11:00:00+00:00")
    response = client.get(f"{STATS}?days=10", headers=user.headers)
    assert response.status_code == 200
    stats = response.json
    days = {d["date"]: d for d in stats["days"]}
    assert list(days) == [(date(2026, 3, 20) + timedelta(days=i)).isoformat() for i in range(10)]
    assert days["2026-03-20"] == {"date": "2026-03-20", "reviews": 2, "again": 0, "hard": 0,
                                  "good": 1, "easy": 1, "minutes": 1.5}  # fmt: skip
    assert days["2026-03-21"]["reviews"] == 0
    assert days["2026-03-28"]["reviews"] == 2 and days["2026-03-28"]["hard"] == 1
    assert days["2026-03-29"]["reviews"] == 2 and days["2026-03-29"]["again"] == 1
    assert stats["streak_days"] == 3
    # Only cards[0] was in the review state before a review (its "again" on the 29th).
    assert stats["retention"] == 0.0
    # cards[0] relearns; cards[1] and the other subject's are learning; cards[2] graduated.
    assert stats["cards"] == {"new": 1, "learning": 2, "review": 1, "relearning": 1, "suspended": 0}
    forecast = stats["forecast"]
    assert len(forecast) == 30 and forecast[0]["date"] == "2026-03-29"
    assert sum(d["due"] for d in forecast) <= 4
    # By subject: only its cards' reviews.
    only = client.get(f"{STATS}?days=10&subject_id={other_sid}", headers=user.headers).json
    assert [d["reviews"] for d in only["days"] if d["reviews"]] == [1]
    assert only["cards"] == {"new": 0, "learning": 1, "review": 0, "relearning": 0, "suspended": 0}
    assert only["streak_days"] == 1  # its one review, in yesterday's study day
    assert only["retention"] is None
    assert day_start(date(2026, 3, 29), paris) == datetime(2026, 3, 29, 2, tzinfo=UTC)


def test_stats_of_nobody(client, user):
    stats = client.get(STATS, headers=user.headers).json
    assert len(stats["days"]) == 30 and all(d["reviews"] == 0 for d in stats["days"])
    assert stats["retention"] is None and stats["streak_days"] == 0
    assert len(stats["forecast"]) == 30 and all(d["due"] == 0 for d in stats["forecast"])
    assert stats["cards"] == {"new": 0, "learning": 0, "review": 0, "relearning": 0, "suspended": 0}


@pytest.mark.parametrize("query", ["days=0", "days=366", "subject_id=0", "days=x"])
def test_stats_validation(client, user, query):
    assert_error_shape(client.get(f"{STATS}?{query}", headers=user.headers), 422)


def insert_reviews(app, owner_id, card_id, moments):
    from eleva.data.db import db
    from eleva.data.models import Review

    rows = [
        {"owner_id": owner_id, "card_id": card_id, "rating": 3, "reviewed_at": at,
         "duration_ms": 1000, "before_state": "review", "before_due": at, "before_reps": 1,
         "before_lapses": 0, "state": "review", "stability": 5.0, "difficulty": 5.0,
         "due": at + timedelta(days=5), "created_at": at}
        for at in moments
    ]  # fmt: skip
    with app.app_context():
        db.session.execute(Review.__table__.insert(), rows)
        db.session.commit()


def test_a_streak_longer_than_the_window_across_dst(app, client, user, monkeypatch):
    settings(client, user, timezone="America/New_York", day_starts_at_hour=4)
    ny = StudySettings("America/New_York", 4)
    now = datetime(2026, 11, 3, 15, tzinfo=UTC)
    Clock(monkeypatch, now)
    sid = make_subject(client, user)
    card = bulk(client, user, sid, 1)[0]
    today = date(2026, 11, 3)
    # 400 study days in a row up to yesterday, each reviewed in its last minute (DST or
    # not), then a gap before them.
    last_minutes = [day_start(today - timedelta(days=k - 1), ny) - timedelta(minutes=1)
                    for k in range(1, 401)]  # fmt: skip
    insert_reviews(app, user.id, card, [*last_minutes, last_minutes[-1] - timedelta(days=3)])
    stats = client.get(f"{STATS}?days=7", headers=user.headers).json
    assert stats["streak_days"] == 400
    assert [d["reviews"] for d in stats["days"]] == [1, 1, 1, 1, 1, 1, 0]
    insert_reviews(app, user.id, card, [now])  # today too
    assert client.get(f"{STATS}?days=1", headers=user.headers).json["streak_days"] == 401
    year = client.get(f"{STATS}?days=365", headers=user.headers).json
    assert sum(d["reviews"] for d in year["days"]) == 365 and year["retention"] == 1.0
    # A day missed the day before yesterday and yesterday: no streak.
    Clock(monkeypatch, now + timedelta(days=2))
    assert client.get(STATS, headers=user.headers).json["streak_days"] == 0


def test_the_forecast_counts_cards_by_the_study_day_they_fall_due(app, client, user, monkeypatch):
    from sqlalchemy import update

    from eleva.data.db import db
    from eleva.data.models import Card

    settings(client, user, timezone="Europe/Paris", day_starts_at_hour=4)
    paris = StudySettings("Europe/Paris", 4)
    now = datetime(2026, 3, 27, 12, tzinfo=UTC)
    Clock(monkeypatch, now)
    sid = make_subject(client, user)
    ids = bulk(client, user, sid, 7)
    dues = [
        now - timedelta(days=3),  # overdue: today
        day_start(date(2026, 3, 28), paris) - timedelta(seconds=1),  # today's last second
        day_start(date(2026, 3, 29), paris),  # the DST day's first moment
        day_start(date(2026, 3, 29), paris) + timedelta(hours=22),  # still the 29th (23 h)
        day_start(date(2026, 4, 25), paris) + timedelta(hours=1),  # the 30th day
        day_start(date(2026, 4, 26), paris),  # beyond the forecast
    ]
    with app.app_context():
        for card_id, due in zip(ids, dues, strict=False):
            db.session.execute(
                update(Card).where(Card.id == card_id).values(state="review", due=due)
            )
        db.session.execute(update(Card).where(Card.id == ids[1]).values(suspended=True))
        db.session.commit()
    forecast = client.get(STATS, headers=user.headers).json["forecast"]
    assert forecast[0]["date"] == "2026-03-27" and forecast[-1]["date"] == "2026-04-25"
    counted = {d["date"]: d["due"] for d in forecast if d["due"]}
    # ids[1] is suspended, ids[6] is new: neither is forecast.
    assert counted == {"2026-03-27": 1, "2026-03-29": 2, "2026-04-25": 1}
