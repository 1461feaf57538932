"""Learning the enforced limit: stated values, multiplicative cuts, additive recovery."""

from __future__ import annotations

from typing import Any

import pytest

from gemini_guard.errors import ConfigError
from gemini_guard.quota import AdaptiveLimits, AdaptivePolicy, LimitLearned, LimitRecovered
from gemini_guard.quota.stores.base import QuotaKey

KEY = QuotaKey("p", "gemini-2.5-flash")


def test_cut_then_recover_step_by_step_never_above_configured() -> None:
    events: list[object] = []
    limits = AdaptiveLimits(
        AdaptivePolicy(decrease=0.5, recovery_period=60.0, recovery_step=0.2),
        on_event=events.append,
    )
    learned = limits.cut(KEY, "rpm", 10, now=0.0, wall=1.0, booked_at=0.0)
    assert learned == LimitLearned(
        project="p",
        model="gemini-2.5-flash",
        metric="rpm",
        enforced=5,
        configured=10,
        previous=10,
        source="unexpected_429",
        at=1.0,
    )
    assert limits.effective(KEY, "rpm", 10, now=59.0, wall=0.0) == 5
    assert limits.effective(KEY, "rpm", 10, now=60.0, wall=0.0) == 7  # +20% of 10
    # One step per period paced at the level before it, however long ago that was:
    # a level nobody has tried is not stepped past.
    assert limits.effective(KEY, "rpm", 10, now=1_000.0, wall=0.0) == 9
    assert limits.effective(KEY, "rpm", 10, now=1_059.0, wall=0.0) == 9
    assert limits.effective(KEY, "rpm", 10, now=1_060.0, wall=0.0) == 10  # capped
    assert limits.effective(KEY, "rpm", 10, now=10_000.0, wall=0.0) == 10
    recovered = [e for e in events if isinstance(e, LimitRecovered)]
    assert [e.effective for e in recovered] == [7, 9, 10]
    assert not limits.has_levels(KEY)  # back to configured: nothing left to remember


def test_one_burst_of_429s_cuts_once() -> None:
    limits = AdaptiveLimits()
    assert limits.cut(KEY, "rpm", 100, now=5.0, wall=0.0, booked_at=4.0) is not None
    # Booked before the cut: paced by the old limit, says nothing new.
    assert limits.cut(KEY, "rpm", 100, now=5.5, wall=0.0, booked_at=4.5) is None
    assert limits.effective(KEY, "rpm", 100, now=6.0, wall=0.0) == 70
    # Booked after the cut and still refused: cut again.
    assert limits.cut(KEY, "rpm", 100, now=7.0, wall=0.0, booked_at=6.0) is not None
    assert limits.effective(KEY, "rpm", 100, now=7.0, wall=0.0) == 49


def test_stated_value_becomes_the_ceiling() -> None:
    events: list[object] = []
    limits = AdaptiveLimits(on_event=events.append)
    learned = limits.learn_stated(KEY, "rpm", 5, 10, now=0.0, wall=0.0)
    assert learned is not None
    assert learned.message == (
        "server enforces about 5 RPM on gemini-2.5-flash (project p), configured 10"
    )
    assert limits.ceiling(KEY, "rpm", 10) == 5
    assert limits.effective(KEY, "rpm", 10, now=1e6, wall=0.0) == 5  # no recovery above it
    assert limits.learn_stated(KEY, "rpm", 5, 10, now=1.0, wall=0.0) is None  # nothing new
    assert len(events) == 1


def test_nothing_to_cut_without_a_known_limit() -> None:
    assert AdaptiveLimits().cut(KEY, "rpm", None, now=0.0, wall=0.0, booked_at=0.0) is None


@pytest.mark.parametrize(
    "kwargs", [{"decrease": 1.0}, {"recovery_period": 0.0}, {"recovery_step": 0.0}]
)
def test_policy_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        AdaptivePolicy(**kwargs)
