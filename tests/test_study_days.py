"""Study days in a user's zone (eleva.core.study): day boundaries across DST changes, the
exam cap, the SQLite functions that mirror them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from eleva.core.study import (
    StudySettings,
    day_start,
    day_start_text,
    exam_cap,
    is_timezone,
    study_day,
    study_day_of_text,
)

PARIS = StudySettings("Europe/Paris", 4)
NEW_YORK = StudySettings("America/New_York", 4)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("settings", "day", "start"),
    [
        # Paris: CET (+1) until 2026-03-29 02:00, then CEST (+2) until 2026-10-25 03:00.
        (PARIS, date(2026, 3, 28), utc(2026, 3, 28, 3)),
        (PARIS, date(2026, 3, 29), utc(2026, 3, 29, 2)),  # 04:00 CEST, the clocks went on
        (PARIS, date(2026, 3, 30), utc(2026, 3, 30, 2)),
        (PARIS, date(2026, 10, 24), utc(2026, 10, 24, 2)),
        (PARIS, date(2026, 10, 25), utc(2026, 10, 25, 3)),  # 04:00 CET, the clocks went back
        # New York: EST (-5) until 2026-03-08 02:00, EDT (-4) until 2026-11-01 02:00.
        (NEW_YORK, date(2026, 3, 7), utc(2026, 3, 7, 9)),
        (NEW_YORK, date(2026, 3, 8), utc(2026, 3, 8, 8)),
        (NEW_YORK, date(2026, 10, 31), utc(2026, 10, 31, 8)),
        (NEW_YORK, date(2026, 11, 1), utc(2026, 11, 1, 9)),
        (StudySettings("UTC", 0), date(2026, 1, 1), utc(2026, 1, 1, 0)),
        (StudySettings("Asia/Kolkata", 4), date(2026, 1, 1), utc(2025, 12, 31, 22, 30)),
    ],
)
def test_a_study_day_starts_at_the_local_hour(settings, day, start):
    assert day_start(day, settings) == start
    assert study_day(start, settings) == day
    assert study_day(start - timedelta(microseconds=1), settings) == day - timedelta(days=1)


def test_study_days_across_dst_last_23_and_25_hours():
    def length(settings, day):
        return day_start(day + timedelta(days=1), settings) - day_start(day, settings)

    assert length(PARIS, date(2026, 3, 28)) == timedelta(hours=23)
    assert length(PARIS, date(2026, 10, 24)) == timedelta(hours=25)
    assert length(NEW_YORK, date(2026, 3, 7)) == timedelta(hours=23)
    assert length(NEW_YORK, date(2026, 10, 31)) == timedelta(hours=25)
    assert length(PARIS, date(2026, 6, 1)) == timedelta(hours=24)


@pytest.mark.parametrize("hour", [0, 1, 2, 3, 4, 23])
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
def test_every_moment_belongs_to_the_day_whose_bounds_hold_it(zone, hour):
    """Around both DST changes of 2026, a start hour inside a skipped or repeated hour
    included: day_start and study_day agree, minute by minute."""
    settings = StudySettings(zone, hour)
    for first in (date(2026, 3, 6), date(2026, 4, 3), date(2026, 10, 2), date(2026, 10, 23)):
        for offset in range(4):
            day = first + timedelta(days=offset)
            start, end = day_start(day, settings), day_start(day + timedelta(days=1), settings)
            assert start < end
            moment = start
            while moment < end:
                assert study_day(moment, settings) == day, (zone, hour, day, moment)
                moment += timedelta(minutes=29)


def test_the_sqlite_functions_give_the_same_days():
    moment = utc(2026, 3, 29, 1, 59, 59, 5)
    stored = moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    assert study_day_of_text(stored, "Europe/Paris", 4) == study_day(moment, PARIS).isoformat()
    start = day_start(date(2026, 3, 27), PARIS)
    assert day_start_text("2026-03-29", 2, "Europe/Paris", 4) == start.replace(
        tzinfo=None
    ).isoformat(sep=" ", timespec="microseconds")


def test_the_exam_cap_is_the_start_of_the_study_day_before_the_exam():
    assert exam_cap(date(2026, 3, 30), PARIS) == utc(2026, 3, 29, 2)
    assert exam_cap(date(2026, 6, 15), StudySettings("UTC", 4)) == utc(2026, 6, 14, 4)


@pytest.mark.parametrize(
    ("name", "known"),
    [("Europe/Paris", True), ("UTC", True), ("America/Argentina/Buenos_Aires", True),
     ("Mars/Olympus", False), ("localtime", False), ("../etc/passwd", False), ("", False),
     ("europe/paris", False)],
)  # fmt: skip
def test_time_zone_names(name, known):
    assert is_timezone(name) is known
