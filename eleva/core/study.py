"""Studying without a database: a user's study settings, their study days in their time
zone, the exam cap, and one review of a card by the ``fsrs`` package (FSRS-6).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import fsrs

CARD_STATES = ("new", "learning", "review", "relearning")
# The contract's scheduler: the package's default parameters, learning steps 1 and 10
# minutes, one relearning step of 10 minutes, intervals of at most 36,500 days, fuzzed.
LEARNING_STEPS = (timedelta(minutes=1), timedelta(minutes=10))
RELEARNING_STEPS = (timedelta(minutes=10),)
MAXIMUM_INTERVAL = 36_500

DEFAULT_TIMEZONE = "UTC"
DEFAULT_DAY_STARTS_AT_HOUR = 4
DEFAULT_NEW_CARDS_PER_DAY = 20
DEFAULT_DESIRED_RETENTION = 0.90
MIN_RETENTION, MAX_RETENTION = 0.70, 0.99
MAX_NEW_CARDS_PER_DAY = 1000

_FSRS_STATES = {
    fsrs.State.Learning: "learning",
    fsrs.State.Review: "review",
    fsrs.State.Relearning: "relearning",
}
_OUR_STATES = {name: state for state, name in _FSRS_STATES.items()}


@dataclass(frozen=True, slots=True)
class StudySettings:
    timezone: str = DEFAULT_TIMEZONE
    day_starts_at_hour: int = DEFAULT_DAY_STARTS_AT_HOUR
    new_cards_per_day: int = DEFAULT_NEW_CARDS_PER_DAY
    desired_retention: float = DEFAULT_DESIRED_RETENTION

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@cache
def timezone_names() -> frozenset[str]:
    # "localtime" is whatever the server's clock says: never a user's zone.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def is_timezone(name: str) -> bool:
    """An IANA zone name this server knows (``Europe/Paris``, ``UTC``)."""
    return name in timezone_names()


# -- study days ---------------------------------------------------------------------------
# A study day runs from day_starts_at_hour to the same hour the next day, local time (as
# in Anki), and is named by the calendar date on which it starts. Local times are
# wall-clock times of the IANA zone, so a day across a DST change lasts 23 or 25 hours.


def study_day(moment: datetime, settings: StudySettings) -> date:
    """The study day ``moment`` (aware) falls in: the local date, ``day_starts_at_hour``
    hours earlier on the wall clock."""
    local = moment.astimezone(settings.zone).replace(tzinfo=None)
    return (local - timedelta(hours=settings.day_starts_at_hour)).date()


def study_day_of_text(stored: str, timezone: str, hour: int) -> str:
    """``study_day`` of a UTC timestamp as SQLite stores it ('YYYY-MM-DD HH:MM:SS…'),
    as 'YYYY-MM-DD': the SQL function ``study_day`` on SQLite (eleva.data.db)."""
    moment = datetime.fromisoformat(stored).replace(tzinfo=UTC)
    return study_day(moment, StudySettings(timezone, hour)).isoformat()


def day_start_text(day: str, days_back: int, timezone: str, hour: int) -> str:
    """``day_start`` of (``day`` − ``days_back``) as SQLite stores a UTC timestamp: the SQL
    function ``study_day_start`` on SQLite (eleva.data.db)."""
    start = day_start(
        date.fromisoformat(day) - timedelta(days=days_back), StudySettings(timezone, hour)
    )
    return start.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def day_start(day: date, settings: StudySettings) -> datetime:
    """When study day ``day`` starts, in UTC. An hour that a DST change skips is read
    with the offset before the change (fold 0), as the wall clock runs on to it."""
    local = datetime.combine(day, time(settings.day_starts_at_hour), tzinfo=settings.zone)
    start = local.astimezone(UTC)
    # A skipped hour: the first moment of the new day is the end of the gap, so that
    # study_day(day_start(d)) is d whatever the zone does.
    if study_day(start, settings) < day:
        start = _first_moment_of(day, start, settings)
    return start


def _first_moment_of(day: date, after: datetime, settings: StudySettings) -> datetime:
    # A wall-clock gap is at most a few hours: walk forward to the change, then bisect.
    step = timedelta(minutes=15)
    probe = after
    while study_day(probe, settings) < day:
        probe += step
    low, high = probe - step, probe
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if study_day(middle, settings) < day:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def exam_cap(exam_date: date, settings: StudySettings) -> datetime:
    """The latest ``due`` before an exam: the start of the study day before it."""
    return day_start(exam_date - timedelta(days=1), settings)


# -- one review -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a card's schedule is: its FSRS memory state and where it stands."""

    state: str
    step: int | None
    stability: float | None
    difficulty: float | None
    due: datetime
    last_review_at: datetime | None
    reps: int
    lapses: int


@cache
def scheduler(desired_retention: float) -> fsrs.Scheduler:
    """The contract's FSRS scheduler for a desired retention (one per value: building
    one validates the parameters)."""
    return fsrs.Scheduler(
        desired_retention=desired_retention,
        learning_steps=LEARNING_STEPS,
        relearning_steps=RELEARNING_STEPS,
        maximum_interval=MAXIMUM_INTERVAL,
        enable_fuzzing=True,
    )


def fsrs_card(card_id: int, schedule: Schedule) -> fsrs.Card:
    """The package's card for a schedule. A new card is, to fsrs 6, a Learning card at
    step 0 with no memory state and no review yet."""
    if schedule.state == "new":
        return fsrs.Card(card_id=card_id, state=fsrs.State.Learning, step=0, due=schedule.due)
    return fsrs.Card(
        card_id=card_id,
        state=_OUR_STATES[schedule.state],
        step=schedule.step,
        stability=schedule.stability,
        difficulty=schedule.difficulty,
        due=schedule.due,
        last_review=schedule.last_review_at,
    )


def review(
    card_id: int,
    schedule: Schedule,
    rating: int,
    reviewed_at: datetime,
    *,
    desired_retention: float,
    cap: datetime | None = None,
) -> Schedule:
    """The schedule after rating the card (1 again … 4 easy) at ``reviewed_at``. A
    ``cap`` (the exam's, see exam_cap) bounds the new ``due`` when the review happens
    before it; stability and difficulty stay FSRS's."""
    after, _log = scheduler(desired_retention).review_card(
        fsrs_card(card_id, schedule),
        fsrs.Rating(rating),
        review_datetime=reviewed_at.astimezone(UTC),
    )
    due = after.due
    if cap is not None and reviewed_at < cap and due > cap:
        due = cap
    return Schedule(
        state=_FSRS_STATES[after.state],
        step=after.step,
        stability=after.stability,
        difficulty=after.difficulty,
        due=due,
        last_review_at=after.last_review,
        reps=schedule.reps + 1,
        lapses=schedule.lapses + (schedule.state == "review" and rating == fsrs.Rating.Again),
    )
