"""Per-day quotas end at midnight America/Los_Angeles, whatever daylight saving does."""

from __future__ import annotations

import datetime as dt

import pytest

from gemini_guard.pacific import day_start, next_reset, quota_day

UTC = dt.UTC


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("now_utc", "reset_utc"),
    [
        # Winter (PST, UTC-8): midnight PT is 08:00 UTC.
        ((2026, 1, 15, 12, 0), (2026, 1, 16, 8, 0)),
        ((2026, 1, 15, 7, 59), (2026, 1, 15, 8, 0)),
        ((2026, 1, 15, 8, 0), (2026, 1, 16, 8, 0)),
        # Summer (PDT, UTC-7): midnight PT is 07:00 UTC.
        ((2026, 7, 4, 6, 30), (2026, 7, 4, 7, 0)),
        # Spring forward on 2026-03-08: the day before the change ends at 08:00 UTC,
        # the day of the change is 23 hours long and ends at 07:00 UTC.
        ((2026, 3, 8, 7, 0), (2026, 3, 8, 8, 0)),
        ((2026, 3, 8, 9, 0), (2026, 3, 9, 7, 0)),
        # Fall back on 2026-11-01: that day is 25 hours long.
        ((2026, 11, 1, 8, 0), (2026, 11, 2, 8, 0)),
        ((2026, 10, 31, 23, 0), (2026, 11, 1, 7, 0)),
    ],
)
def test_next_reset_is_the_next_pacific_midnight(
    now_utc: tuple[int, int, int, int, int], reset_utc: tuple[int, int, int, int, int]
) -> None:
    assert next_reset(_ts(*now_utc)) == _ts(*reset_utc)


def test_dst_days_have_23_and_25_hours() -> None:
    spring = day_start(_ts(2026, 3, 8, 12, 0))
    assert next_reset(spring) - spring == 23 * 3600
    fall = day_start(_ts(2026, 11, 1, 12, 0))
    assert next_reset(fall) - fall == 25 * 3600


def test_quota_day_is_the_pacific_date() -> None:
    # 03:00 UTC on Jan 16 is still Jan 15 in California.
    assert quota_day(_ts(2026, 1, 16, 3, 0)) == dt.date(2026, 1, 15)
    assert day_start(_ts(2026, 1, 16, 3, 0)) == _ts(2026, 1, 15, 8, 0)
