"""Studying: reviews of a user's cards scheduled by FSRS (eleva.core.study), undo, the
review queue, and study statistics. Confined to one owner, as every service is.

A study day is the wall clock minus ``day_starts_at_hour`` hours, in Python and in SQL
alike, so both give the same days.
"""

# SQL below is assembled from constants written here; every value is a bind parameter.
# ruff: noqa: S608
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    Select,
    TextClause,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from eleva.core import study
from eleva.core.errors import NotFound, ValidationFailed
from eleva.data.db import commit, db, dialect_name
from eleva.data.models import Card, IdempotencyKey, Review, Subject, UTCDateTime, utcnow
from eleva.data.pages import Page, paginate
from eleva.services.cards import NO_SUCH_CARD

IDEMPOTENCY_HOURS = 24
# A client's clock may run a little ahead of ours.
CLOCK_SLACK = timedelta(seconds=60)
FORECAST_DAYS = 30
MAX_STREAK = 36_500
NO_REVIEW = "This card has no review to undo."
KEY_REUSED = (
    "This Idempotency-Key was used for another request in the last 24 hours: "
    "send a new key for a new request."
)


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    review: Review
    card: Card


# -- a review -----------------------------------------------------------------------------


def review_card(
    owner_id: int,
    settings: study.StudySettings,
    card_id: int,
    *,
    rating: int,
    reviewed_at: datetime | None = None,
    duration_ms: int | None = None,
    idempotency_key: str | None = None,
    render: Callable[[ReviewOutcome], dict[str, Any]],
) -> dict[str, Any]:
    """Record a review of the owner's card and reschedule it; what ``render`` makes of
    the outcome is the answer, kept with ``idempotency_key`` (when given) so that a
    retry of the same request gets it again and records nothing more."""
    fingerprint = _fingerprint(card_id, rating, reviewed_at, duration_ms)
    now = utcnow()
    if idempotency_key is not None:
        answered = _answered(owner_id, idempotency_key, fingerprint, now)
        if answered is not None:
            return answered
    # One transaction: the card locked (two reviews of it never lose an update), the
    # review inserted, the card updated, the key's row inserted.
    row = db.session.execute(
        select(Card, Subject.exam_date)
        .join(Subject, and_(Subject.owner_id == Card.owner_id, Subject.id == Card.subject_id))
        .where(Card.id == card_id, Card.owner_id == owner_id)
        .with_for_update(of=Card)
    ).first()
    if row is None:
        raise NotFound(NO_SUCH_CARD)
    card, exam_date = row
    if reviewed_at is None:
        # Now, read once the lock is ours: reviews of one card sent at once are then in
        # the order they are recorded (never "earlier than the last" for a later one).
        now = utcnow()
        at = max(now, card.last_review_at) if card.last_review_at else now
    else:
        at = reviewed_at.astimezone(UTC)
    if at > now + CLOCK_SLACK:
        raise ValidationFailed.field("reviewed_at", "A review cannot happen in the future.")
    if card.last_review_at is not None and at < card.last_review_at:
        raise ValidationFailed.field(
            "reviewed_at",
            "Earlier than this card's last review: send offline reviews in order.",
        )
    before = card.schedule
    cap = study.exam_cap(exam_date, settings) if exam_date is not None else None
    after = study.review(
        card.id, before, rating, at, desired_retention=settings.desired_retention, cap=cap
    )
    review = Review(
        owner_id=owner_id,
        card_id=card.id,
        rating=rating,
        reviewed_at=at,
        duration_ms=duration_ms,
        before_state=before.state,
        before_step=before.step,
        before_stability=before.stability,
        before_difficulty=before.difficulty,
        before_due=before.due,
        before_last_review_at=before.last_review_at,
        before_reps=before.reps,
        before_lapses=before.lapses,
        state=after.state,
        step=after.step,
        stability=after.stability,
        difficulty=after.difficulty,
        due=after.due,
        created_at=now,
    )
    _set_schedule(card, after)
    db.session.add(review)
    db.session.flush()
    answer = render(ReviewOutcome(review, card))
    if idempotency_key is None:
        db.session.commit()
        return answer
    db.session.add(
        IdempotencyKey(
            user_id=owner_id,
            key=idempotency_key,
            fingerprint=fingerprint,
            response=answer,
            created_at=now,
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        # The same key, sent again while this one ran: the first to commit answered,
        # and this one records nothing.
        db.session.rollback()
        answered = _answered(owner_id, idempotency_key, fingerprint, now)
        if answered is None:
            raise
        return answered
    return answer


def _fingerprint(card_id: int, rating: int, at: datetime | None, duration_ms: int | None) -> str:
    request = {
        "card_id": card_id,
        "rating": rating,
        "reviewed_at": at.astimezone(UTC).isoformat() if at else None,
        "duration_ms": duration_ms,
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _answered(owner_id: int, key: str, fingerprint: str, now: datetime) -> dict[str, Any] | None:
    """The answer kept for this key, if a live one; a field error when the key came
    with another request."""
    kept = db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == owner_id, IdempotencyKey.key == key)
    )
    if kept is None:
        return None
    if kept.created_at <= now - timedelta(hours=IDEMPOTENCY_HOURS):
        # Expired (the prune has not run yet): the key is free again.
        db.session.delete(kept)
        db.session.flush()
        return None
    if kept.fingerprint != fingerprint:
        raise ValidationFailed.field("Idempotency-Key", KEY_REUSED, location="headers")
    db.session.rollback()
    return dict(kept.response)


def _set_schedule(card: Card, schedule: study.Schedule) -> None:
    card.state = schedule.state
    card.step = schedule.step
    card.stability = schedule.stability
    card.difficulty = schedule.difficulty
    card.due = schedule.due
    card.last_review_at = schedule.last_review_at
    card.reps = schedule.reps
    card.lapses = schedule.lapses


def undo_last_review(owner_id: int, card_id: int) -> Card:
    """Delete the card's last review and give the card back its schedule from before
    it, exactly. NotFound when the card is not the owner's or has no review."""
    card = db.session.scalar(
        select(Card).where(Card.id == card_id, Card.owner_id == owner_id).with_for_update()
    )
    if card is None:
        raise NotFound(NO_SUCH_CARD)
    last = db.session.scalar(
        select(Review).where(Review.card_id == card.id).order_by(Review.id.desc()).limit(1)
    )
    if last is None:
        raise NotFound(NO_REVIEW)
    _set_schedule(card, last.before)
    db.session.delete(last)
    commit()
    return card


def list_reviews(
    owner_id: int, card_id: int, *, page: int = 1, page_size: int = 20
) -> Page[Review]:
    """One page of the card's reviews, oldest first (NotFound: not the owner's card)."""
    if (
        db.session.scalar(select(Card.id).where(Card.id == card_id, Card.owner_id == owner_id))
        is None
    ):
        raise NotFound(NO_SUCH_CARD)
    query = select(Review).where(Review.card_id == card_id).order_by(Review.id)
    return paginate(query, page=page, page_size=page_size)


# -- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queue:
    cards: list[Card]
    counts: dict[str, int]


def queue(
    owner_id: int,
    settings: study.StudySettings,
    *,
    subject_ids: list[int] | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> Queue:
    """The cards to study now, in the contract's order, and how many there are of each
    kind: two statements (the counts, the cards) however many cards there are."""
    now = now or utcnow()
    counting, listing = _queue_statements(bool(subject_ids))
    params: dict[str, Any] = {
        "owner_id": owner_id,
        "now": now,
        "day_start": study.day_start(study.study_day(now, settings), settings),
        "per_day": settings.new_cards_per_day,
    }
    if subject_ids:
        params["subject_ids"] = sorted(set(subject_ids))
    new_today, learning, review, new_waiting = db.session.execute(counting, params).one()
    allowance = max(settings.new_cards_per_day - new_today, 0)
    counts = {"learning": learning, "review": review, "new": min(new_waiting, allowance)}
    if not any(counts.values()):
        return Queue([], counts)
    params |= {"limit": limit, "new_limit": min(limit, allowance)}
    return Queue(list(db.session.scalars(listing, params).all()), counts)


@cache
def _queue_statements(by_subject: bool) -> tuple[Select[Any], Select[Any]]:
    """The queue's two statements, built once (building costs more than running them).
    Each part reads ix_cards_queue: one owner, one state, by due, not suspended."""
    # NOT suspended, as the partial index says it.
    where = (Card.owner_id == bindparam("owner_id")) & ~Card.suspended
    if by_subject:
        where &= Card.subject_id.in_(bindparam("subject_ids", expanding=True))
    due = Card.due <= bindparam("now")
    learning = where & Card.state.in_(("learning", "relearning")) & due
    review = where & (Card.state == "review") & due
    # A new card's due is its creation time: by due is creation order.
    new = where & (Card.state == "new")
    # New cards waiting: counted up to the daily allowance, which bounds the count.
    new_waiting = select(literal(1)).where(new).limit(bindparam("per_day")).subquery()
    new_today = select(func.count()).where(
        Review.owner_id == bindparam("owner_id"),
        Review.reviewed_at >= bindparam("day_start", type_=UTCDateTime()),
        Review.before_state == "new",
    )
    counting = select(
        new_today.scalar_subquery(),
        select(func.count()).where(learning).scalar_subquery(),
        select(func.count()).where(review).scalar_subquery(),
        select(func.count()).select_from(new_waiting).scalar_subquery(),
    )
    parts = ((0, learning, "limit"), (1, review, "limit"), (2, new, "new_limit"))
    union = union_all(
        *(
            select(*part.c)
            for part in (
                select(Card.id, Card.due, literal(group).label("grp"))
                .where(condition)
                .order_by(Card.due, Card.id)
                .limit(bindparam(size))
                .subquery()
                for group, condition, size in parts
            )
        )
    ).subquery("q")
    listed = aliased(Card)
    listing = (
        select(listed)
        .join(union, union.c.id == listed.id)
        .order_by(union.c.grp, union.c.due, union.c.id)
        .limit(bindparam("limit"))
    )
    return counting, listing


# -- statistics ---------------------------------------------------------------------------


def stats(
    owner_id: int,
    settings: study.StudySettings,
    *,
    days: int = 30,
    subject_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Reviews per study day, retention, streak, forecast and cards by state: each
    aggregated by the database (four statements, whatever the reviews)."""
    now = now or utcnow()
    today = study.study_day(now, settings)
    first = today - timedelta(days=days - 1)
    params: dict[str, Any] = {
        "owner_id": owner_id,
        "days": days,
        "tz": settings.timezone,
        "hour": settings.day_starts_at_hour,
        "from": study.day_start(first, settings),
        "until": study.day_start(today + timedelta(days=1), settings),
        "today": today,
        "today_start": study.day_start(today, settings),
        "forecast_until": study.day_start(today + timedelta(days=FORECAST_DAYS), settings),
    }
    in_subject = ""
    if subject_id is not None:
        params["subject_id"] = subject_id
        in_subject = " AND c.subject_id = :subject_id"
    postgres = dialect_name() == "postgresql"
    per_day = _per_day(params, in_subject, postgres)
    day_rows: list[dict[str, Any]] = []
    tried = passed = 0
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = per_day.get(day)
        day_rows.append(
            {
                "date": day,
                "reviews": row.reviews if row else 0,
                "again": row.again if row else 0,
                "hard": row.hard if row else 0,
                "good": row.good if row else 0,
                "easy": row.easy if row else 0,
                "minutes": round((row.ms if row else 0) / 60_000, 1),
            }
        )
        if row:
            tried += row.tried
            passed += row.passed
    return {
        "days": day_rows,
        "retention": round(passed / tried, 4) if tried else None,
        "streak_days": _streak(params, in_subject, postgres, [r["reviews"] > 0 for r in day_rows]),
        "forecast": _forecast(params, in_subject, postgres, today),
        "cards": _cards_by_state(owner_id, subject_id),
    }


# A study day is computed in Python (zoneinfo) for the boundaries the queries take, and
# in SQL for grouping rows by day: PostgreSQL's AT TIME ZONE, SQLite's study_day()
# (registered by eleva.data.db).
def _day_sql(column: str, postgres: bool) -> str:
    """SQL of the study day of a timestamp column, in the zone :tz starting at :hour."""
    if postgres:
        return f"CAST(({column} AT TIME ZONE :tz) - make_interval(hours => :hour) AS date)"
    return f"study_day({column}, :tz, :hour)"


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _reviews_from(in_subject: str) -> str:
    if not in_subject:
        return "reviews r"
    return "reviews r JOIN cards c ON c.id = r.card_id"


# What a study day's reviews add up to (the columns of a day in the stats).
_DAY_TOTALS = """
    count(*) AS reviews,
    sum(CASE WHEN r.rating = 1 THEN 1 ELSE 0 END) AS again,
    sum(CASE WHEN r.rating = 2 THEN 1 ELSE 0 END) AS hard,
    sum(CASE WHEN r.rating = 3 THEN 1 ELSE 0 END) AS good,
    sum(CASE WHEN r.rating = 4 THEN 1 ELSE 0 END) AS easy,
    coalesce(sum(r.duration_ms), 0) AS ms,
    sum(CASE WHEN r.before_state = 'review' THEN 1 ELSE 0 END) AS tried,
    sum(CASE WHEN r.before_state = 'review' AND r.rating > 1 THEN 1 ELSE 0 END) AS passed
"""


def _per_day(params: dict[str, Any], in_subject: str, postgres: bool) -> dict[date, Any]:
    """The totals of each study day of the window that has reviews."""
    if postgres:
        # One range of the (owner_id, reviewed_at) index per day, between the day's bounds
        # (AT TIME ZONE), read by the index alone (it carries what is added up): no per-row
        # time-zone arithmetic, no hashing of every review of the window.
        sql = f"""
            SELECT CAST(:today AS date) - k.n AS day, t.*
              FROM generate_series(0, :days - 1) AS k(n)
             CROSS JOIN LATERAL (
                   SELECT {_DAY_TOTALS}
                     FROM {_reviews_from(in_subject)}
                    WHERE r.owner_id = :owner_id
                      AND r.reviewed_at >= {_day_start_sql("k.n", postgres)}
                      AND r.reviewed_at < {_day_start_sql("k.n - 1", postgres)} {in_subject}
                   ) t
             WHERE t.reviews > 0
        """  # nosec B608
    else:  # SQLite: GROUP BY the study_day() of each review
        sql = f"""
            SELECT {_day_sql("r.reviewed_at", postgres)} AS day, {_DAY_TOTALS}
              FROM {_reviews_from(in_subject)}
             WHERE r.owner_id = :owner_id AND r.reviewed_at >= :from
                   AND r.reviewed_at < :until {in_subject}
             GROUP BY 1
        """  # nosec B608
    rows = db.session.execute(_statement(sql, params))
    return {_as_date(row.day): row for row in rows}


def _day_start_sql(days_back: str, postgres: bool) -> str:
    """SQL of when study day (:today − ``days_back``) starts, as stored timestamps are."""
    if postgres:
        return (
            f"(((CAST(:today AS date) - ({days_back})) + make_interval(hours => :hour)) "
            "AT TIME ZONE :tz)"
        )
    return f"study_day_start(:today, {days_back}, :tz, :hour)"


def _streak(
    params: dict[str, Any], in_subject: str, postgres: bool, reviewed_days: list[bool]
) -> int:
    """Consecutive study days with a review, ending today or yesterday. Within the
    window, from its days (``reviewed_days``, oldest first); a streak that reaches
    back to the window's first day goes on in SQL, one day at a time, each step one
    probe of the (owner_id, reviewed_at) index. Always one statement (an empty walk
    when the window holds the whole streak)."""
    back = reviewed_days[::-1]  # today first
    start = 0 if back[0] else 1
    run = 0
    while start + run < len(back) and back[start + run]:
        run += 1
    extend = start + run == len(back)

    def reviewed(days_back: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM {_reviews_from(in_subject)} WHERE r.owner_id = :owner_id"  # nosec B608
            f" AND r.reviewed_at >= {_day_start_sql(days_back, postgres)}"
            f" AND r.reviewed_at < {_day_start_sql(f'{days_back} - 1', postgres)}{in_subject})"
        )

    sql = f"""
        WITH RECURSIVE walk(n) AS (
            SELECT :window WHERE :extend AND {reviewed(":window")}
            UNION ALL
            SELECT n + 1 FROM walk WHERE n < :max_streak AND {reviewed("n + 1")}
        )
        SELECT count(*) FROM walk
    """  # nosec B608
    statement = _statement(
        sql, {**params, "window": len(back), "extend": extend, "max_streak": MAX_STREAK}
    )
    return run + int(db.session.execute(statement).scalar_one())


def _forecast(
    params: dict[str, Any], in_subject: str, postgres: bool, today: date
) -> list[dict[str, Any]]:
    """Cards falling due on each of the next FORECAST_DAYS study days (today's count
    includes the overdue); never new or suspended cards."""
    day = _day_sql("c.due", postgres)
    sql = f"""
        SELECT CASE WHEN c.due < :today_start THEN :today ELSE {day} END AS day,
               count(*) AS due
          FROM cards c
         WHERE c.owner_id = :owner_id AND NOT c.suspended
               AND c.state IN ('learning', 'review', 'relearning')
               AND c.due < :forecast_until {in_subject}
         GROUP BY 1
    """  # nosec B608
    counts = {_as_date(row.day): row.due for row in db.session.execute(_statement(sql, params))}
    return [
        {"date": d, "due": counts.get(d, 0)}
        for d in (today + timedelta(days=i) for i in range(FORECAST_DAYS))
    ]


def _cards_by_state(owner_id: int, subject_id: int | None) -> dict[str, int]:
    """The owner's cards by state, and the suspended ones apart: each from its own
    partial index (ix_cards_queue, ix_cards_suspended), read alone."""
    mine = Card.owner_id == owner_id
    if subject_id is not None:
        mine &= Card.subject_id == subject_id
    query = union_all(
        select(Card.state, func.count()).where(mine, ~Card.suspended).group_by(Card.state),
        select(literal("suspended"), func.count()).where(mine, Card.suspended),
    )
    counts = dict.fromkeys((*study.CARD_STATES, "suspended"), 0)
    counts.update({state: n for state, n in db.session.execute(query)})
    return counts


# Bound with their types: timestamps as the columns store them (SQLite compares text).
_PARAM_TYPES: dict[str, Any] = {
    "from": UTCDateTime(),
    "until": UTCDateTime(),
    "today_start": UTCDateTime(),
    "forecast_until": UTCDateTime(),
    "today": Date(),
    "days": Integer(),
    "hour": Integer(),
    "max_streak": Integer(),
    "window": Integer(),
    "extend": Boolean(),
}


def _statement(sql: str, params: dict[str, Any]) -> TextClause:
    """``sql`` with those of ``params`` it names, typed."""
    return text(sql).bindparams(
        *(
            bindparam(name, value, type_=_PARAM_TYPES.get(name))
            for name, value in params.items()
            if re.search(rf":{name}\b", sql)
        )
    )


# -- upkeep -------------------------------------------------------------------------------


def prune_idempotency_keys(now: datetime | None = None) -> int:
    """Delete the keys older than IDEMPOTENCY_HOURS; how many went."""
    cutoff = (now or utcnow()) - timedelta(hours=IDEMPOTENCY_HOURS)
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    db.session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
