"""The Gemini API's quota day: it ends at midnight America/Los_Angeles.

Per-day quotas (RPD, TPD) reset at Pacific midnight, which is 07:00 or 08:00 UTC
depending on daylight saving time. All functions take and return wall-clock epoch
seconds (a `Clock.time()` reading), so they work the same on a FakeClock.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

__all__ = ["PACIFIC", "day_start", "next_reset", "quota_day"]

PACIFIC = ZoneInfo("America/Los_Angeles")


def quota_day(wall: float) -> dt.date:
    """The Pacific calendar date that `wall` falls on."""
    return dt.datetime.fromtimestamp(wall, PACIFIC).date()


def day_start(wall: float) -> float:
    """Epoch seconds of the Pacific midnight that began the quota day of `wall`."""
    day = quota_day(wall)
    return dt.datetime(day.year, day.month, day.day, tzinfo=PACIFIC).timestamp()


def next_reset(wall: float) -> float:
    """Epoch seconds of the next Pacific midnight after `wall` (when per-day quotas reset)."""
    day = quota_day(wall) + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=PACIFIC).timestamp()
