"""Card, review, queue and statistics schemas."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from eleva.core.study import CARD_STATES
from eleva.http.fields import (
    VISIBLE_PATTERN,
    StrictBoolean,
    StrictInteger,
    Text,
    has_visible_character,
)
from eleva.http.schemas import ResponseSchema
from eleva.services.cards import MAX_BULK, SORT_KEYS
from eleva.services.study import FORECAST_DAYS

FRONT_MAX = 10_000
BACK_MAX = 10_000
MAX_ID = 2**31 - 1
MAX_DURATION_MS = 3_600_000
# An Idempotency-Key: printable ASCII, as a header carries it (a UUID will do).
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


def _front(**kwargs: Any) -> Text:
    # Markdown keeps its whitespace.
    return Text(
        strip=False,
        validate=[validate.Length(min=1, max=FRONT_MAX), has_visible_character],
        metadata={
            "description": f"Markdown, 1 to {FRONT_MAX:,} characters.",
            "example": "What is an eigenvalue?",
            "pattern": VISIBLE_PATTERN,
        },
        **kwargs,
    )


def _back(**kwargs: Any) -> Text:
    return Text(
        strip=False,
        validate=validate.Length(max=BACK_MAX),
        metadata={
            "description": f"Markdown, up to {BACK_MAX:,} characters; may be empty.",
            "example": "A λ with *Av* = λ*v* for some *v* ≠ 0.",
        },
        **kwargs,
    )


def _note_id(**kwargs: Any) -> StrictInteger:
    return StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID, error="No such note in this subject."),
        metadata={
            "description": "The note the card was made from: a note of the same subject, or null.",
            "example": 7,
        },
        **kwargs,
    )


class CardCreateSchema(ma.Schema):
    front = _front(required=True)
    back = _back(load_default="")
    note_id = _note_id()


class CardBulkSchema(ma.Schema):
    cards = ma.fields.List(
        ma.fields.Nested(CardCreateSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_BULK),
        metadata={
            "description": f"1 to {MAX_BULK:,} cards, created all or none.",
            "example": [
                {"front": "What is an eigenvalue?", "back": "A λ with *Av* = λ*v*."},
                {"front": "det(*AB*) = ?", "back": "det(*A*) · det(*B*)", "note_id": None},
            ],
        },
    )


class CardUpdateSchema(ma.Schema):
    front = _front()
    back = _back()
    note_id = _note_id()
    suspended = StrictBoolean(
        metadata={"description": "A suspended card is never in the queue.", "example": False}
    )
    subject_id = StrictInteger(
        validate=validate.Range(min=1, max=MAX_ID, error="No such subject among yours."),
        metadata={
            "description": "Move the card (with its schedule and reviews) to another of "
            "your subjects. Its note stays linked only if it is in that subject too.",
            "example": 2,
        },
    )


_STATE = {"enum": list(CARD_STATES)}


class CardSchema(ResponseSchema):
    id = ma.fields.Integer(required=True)
    subject_id = ma.fields.Integer(required=True)
    note_id = ma.fields.Integer(required=True, allow_none=True)
    front = ma.fields.String(required=True)
    back = ma.fields.String(required=True)
    state = ma.fields.String(
        required=True,
        metadata={**_STATE, "description": "new (never reviewed), learning, review, relearning."},
    )
    due = ma.fields.AwareDateTime(
        required=True, metadata={"description": "When it is next due (a new card: its creation)."}
    )
    stability = ma.fields.Float(
        required=True, allow_none=True, metadata={"description": "FSRS stability, in days."}
    )
    difficulty = ma.fields.Float(
        required=True, allow_none=True, metadata={"description": "FSRS difficulty, 1 to 10."}
    )
    reps = ma.fields.Integer(required=True, metadata={"description": "Reviews."})
    lapses = ma.fields.Integer(
        required=True, metadata={"description": "Reviews rated again in the review state."}
    )
    last_review_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    suspended = ma.fields.Boolean(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(
        required=True,
        metadata={"description": "The last change of the card itself; reviews do not count."},
    )


class CardIdsSchema(ResponseSchema):
    ids = ma.fields.List(
        ma.fields.Integer(), required=True, metadata={"description": "In the order sent."}
    )


class CardQuerySchema(ma.Schema):
    class Meta:
        # page and page_size belong to the pagination parser, which reads the same query.
        unknown = ma.EXCLUDE

    state = ma.fields.List(
        Text(validate=validate.OneOf(CARD_STATES)),
        metadata={"description": "Repeatable: new, learning, review, relearning."},
    )
    suspended = ma.fields.Boolean(
        truthy={"true"},
        falsy={"false"},
        metadata={"description": "true: only suspended cards; false: only the others."},
    )
    sort = Text(
        load_default="due",
        validate=validate.OneOf(SORT_KEYS),
        metadata={"description": "due (default), -due, created_at, -created_at; ties by id."},
    )


class ReviewCreateSchema(ma.Schema):
    rating = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=4),
        metadata={"description": "1 again, 2 hard, 3 good, 4 easy.", "example": 3},
    )
    reviewed_at = ma.fields.AwareDateTime(
        metadata={
            "description": "When the review happened (default: now), with its offset. Offline "
            "reviews are sent in order: not earlier than the card's last review, and "
            "not later than now + 60 s.",
            "example": "2026-11-26T10:00:00+00:00",
        }
    )
    duration_ms = StrictInteger(
        validate=validate.Range(min=0, max=MAX_DURATION_MS),
        metadata={"description": "How long the review took.", "example": 8500},
    )


class IdempotencyHeaderSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = Text(
        data_key="Idempotency-Key",
        validate=validate.Regexp(KEY_PATTERN, error="1 to 255 printable ASCII characters."),
        metadata={
            "description": "Any unique value (a UUID): a request sent again with the same key "
            "within 24 hours answers what the first answered and records nothing more. "
            "The same key with another body: 422.",
            "example": "5b0c6d1e-8a53-4b8e-9d0e-1f3f2f9f7a11",
        },
    )


class ReviewSchema(ResponseSchema):
    id = ma.fields.Integer(required=True)
    card_id = ma.fields.Integer(required=True)
    rating = ma.fields.Integer(required=True, metadata={"description": "1 again … 4 easy."})
    reviewed_at = ma.fields.AwareDateTime(required=True)
    duration_ms = ma.fields.Integer(required=True, allow_none=True)
    state = ma.fields.String(
        required=True, metadata={**_STATE, "description": "The card's state after the review."}
    )
    due = ma.fields.AwareDateTime(
        required=True, metadata={"description": "The card's due after the review."}
    )


class ReviewResultSchema(ResponseSchema):
    review = ma.fields.Nested(ReviewSchema, required=True)
    card = ma.fields.Nested(CardSchema, required=True)


class QueueQuerySchema(ma.Schema):
    subject_id = ma.fields.List(
        ma.fields.Integer(validate=validate.Range(min=1, max=MAX_ID)),
        metadata={"description": "Repeatable: only these subjects of yours (default: all)."},
    )
    limit = ma.fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=200),
        metadata={"description": "How many cards at most (1–200, default 50)."},
    )


class QueueCountsSchema(ResponseSchema):
    learning = ma.fields.Integer(required=True, metadata={"description": "learning and relearning"})
    review = ma.fields.Integer(required=True)
    new = ma.fields.Integer(required=True, metadata={"description": "within today's allowance"})


class QueueSchema(ResponseSchema):
    cards = ma.fields.List(ma.fields.Nested(CardSchema), required=True)
    counts = ma.fields.Nested(
        QueueCountsSchema,
        required=True,
        metadata={"description": "The totals behind the list (not cut by limit)."},
    )


class StatsQuerySchema(ma.Schema):
    days = ma.fields.Integer(
        load_default=30,
        validate=validate.Range(min=1, max=365),
        metadata={"description": "How many study days, ending today (1–365, default 30)."},
    )
    subject_id = ma.fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Only this subject of yours (another's has nothing)."},
    )


class StudyDaySchema(ResponseSchema):
    date = ma.fields.Date(
        required=True, metadata={"description": "The calendar date the study day starts on."}
    )
    reviews = ma.fields.Integer(required=True)
    again = ma.fields.Integer(required=True)
    hard = ma.fields.Integer(required=True)
    good = ma.fields.Integer(required=True)
    easy = ma.fields.Integer(required=True)
    minutes = ma.fields.Float(
        required=True, metadata={"description": "The reviews' duration_ms summed, in minutes."}
    )


class ForecastDaySchema(ResponseSchema):
    date = ma.fields.Date(required=True)
    due = ma.fields.Integer(
        required=True, metadata={"description": "Cards falling due that day (today: overdue too)."}
    )


class CardCountsSchema(ResponseSchema):
    new = ma.fields.Integer(required=True)
    learning = ma.fields.Integer(required=True)
    review = ma.fields.Integer(required=True)
    relearning = ma.fields.Integer(required=True)
    suspended = ma.fields.Integer(
        required=True, metadata={"description": "Suspended cards (not counted by state)."}
    )


class StatsSchema(ResponseSchema):
    days = ma.fields.List(
        ma.fields.Nested(StudyDaySchema),
        required=True,
        metadata={"description": "The last `days` study days, oldest first, zeros included."},
    )
    retention = ma.fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "The share of reviews of cards in the review state (before the "
            "review) not rated again in the period; null when there were none."
        },
    )
    streak_days = ma.fields.Integer(
        required=True,
        metadata={
            "description": "Consecutive study days with a review, ending today or yesterday."
        },
    )
    forecast = ma.fields.List(
        ma.fields.Nested(ForecastDaySchema),
        required=True,
        metadata={"description": f"The next {FORECAST_DAYS} study days, today first."},
    )
    cards = ma.fields.Nested(CardCountsSchema, required=True)


# Examples for the OpenAPI spec.
CARD_EXAMPLE = {
    "id": 42,
    "subject_id": 3,
    "note_id": 7,
    "front": "What is an eigenvalue?",
    "back": "A λ with *Av* = λ*v* for some *v* ≠ 0.",
    "state": "review",
    "due": "2026-12-04T09:12:00+00:00",
    "stability": 8.42,
    "difficulty": 5.1,
    "reps": 4,
    "lapses": 0,
    "last_review_at": "2026-11-26T09:12:00+00:00",
    "suspended": False,
    "created_at": "2026-11-20T18:30:00+00:00",
    "updated_at": "2026-11-20T18:30:00+00:00",
}
REVIEW_EXAMPLE = {
    "id": 311,
    "card_id": 42,
    "rating": 3,
    "reviewed_at": "2026-11-26T09:12:00+00:00",
    "duration_ms": 8500,
    "state": "review",
    "due": "2026-12-04T09:12:00+00:00",
}
REVIEW_RESULT_EXAMPLE = {"review": REVIEW_EXAMPLE, "card": CARD_EXAMPLE}
QUEUE_EXAMPLE = {"cards": [CARD_EXAMPLE], "counts": {"learning": 0, "review": 1, "new": 0}}
STATS_EXAMPLE = {
    "days": [
        {"date": "2026-11-25", "reviews": 0, "again": 0, "hard": 0, "good": 0, "easy": 0,
         "minutes": 0.0},
        {"date": "2026-11-26", "reviews": 36, "again": 4, "hard": 3, "good": 25, "easy": 4,
         "minutes": 7.5},
    ],
    "retention": 0.8889,
    "streak_days": 1,
    "forecast": [{"date": "2026-11-26", "due": 12}, {"date": "2026-11-27", "due": 20}],
    "cards": {"new": 120, "learning": 3, "review": 64, "relearning": 1, "suspended": 2},
}  # fmt: skip
