"""The quota ledger alone: exact sliding windows and the Pacific day."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gemini_guard.emulator.quota import WINDOW_SECONDS, QuotaLedger
from gemini_guard.tiers import Limits

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_n_requests_at_one_instant_pass_and_the_next_waits_for_the_oldest() -> None:
    ledger = QuotaLedger()
    limits = Limits(rpm=3)
    for _ in range(3):
        assert ledger.check("p", "m", limits=limits, tokens=1, now=0.0, wall=WALL) == []
        ledger.admit("p", "m", tokens=1, now=0.0, wall=WALL)
    (violation,) = ledger.check("p", "m", limits=limits, tokens=1, now=0.0, wall=WALL)
    assert (violation.kind, violation.limit, violation.retry_after) == ("rpm", 3, 60.0)


def test_retry_after_is_the_time_until_enough_old_requests_leave() -> None:
    ledger = QuotaLedger()
    limits = Limits(rpm=3)
    for t in (0.0, 10.0, 20.0):
        ledger.admit("p", "m", tokens=1, now=t, wall=WALL + t)
    (violation,) = ledger.check("p", "m", limits=limits, tokens=1, now=25.5, wall=WALL + 25.5)
    assert violation.retry_after == 60.0 - 25.5
    # Exactly when the oldest leaves, the request is admitted.
    assert ledger.check("p", "m", limits=limits, tokens=1, now=60.0, wall=WALL + 60) == []


def test_lowered_limit_waits_for_as_many_requests_as_needed() -> None:
    ledger = QuotaLedger()
    for t in (0.0, 1.0, 2.0, 3.0):
        ledger.admit("p", "m", tokens=1, now=t, wall=WALL)
    # 4 in the window, limit now 2: three must leave; the third oldest left at 2 + 60.
    (violation,) = ledger.check("p", "m", limits=Limits(rpm=2), tokens=1, now=5.0, wall=WALL)
    assert violation.retry_after == 57.0


def test_tokens_per_minute_counts_input_tokens_exactly() -> None:
    ledger = QuotaLedger()
    limits = Limits(tpm=100)
    ledger.admit("p", "m", tokens=40, now=0.0, wall=WALL)
    ledger.admit("p", "m", tokens=40, now=30.0, wall=WALL)
    assert ledger.check("p", "m", limits=limits, tokens=20, now=31.0, wall=WALL) == []
    (violation,) = ledger.check("p", "m", limits=limits, tokens=21, now=31.0, wall=WALL)
    assert (violation.kind, violation.retry_after) == ("tpm", 29.0)
    # 61 tokens need both earlier requests gone: the second leaves at 90.
    (violation,) = ledger.check("p", "m", limits=limits, tokens=61, now=31.0, wall=WALL)
    assert violation.retry_after == 59.0


def test_a_request_larger_than_the_token_budget_never_fits() -> None:
    ledger = QuotaLedger()
    (violation,) = ledger.check("p", "m", limits=Limits(tpm=10), tokens=11, now=0.0, wall=WALL)
    assert violation.kind == "tpm"
    assert violation.retry_after == WINDOW_SECONDS


def test_several_limits_are_reported_together() -> None:
    ledger = QuotaLedger()
    ledger.admit("p", "m", tokens=10, now=0.0, wall=WALL)
    kinds = {
        v.kind
        for v in ledger.check(
            "p", "m", limits=Limits(rpm=1, tpm=15, rpd=1), tokens=10, now=0, wall=WALL
        )
    }
    assert kinds == {"rpm", "tpm", "rpd"}


def test_projects_and_models_are_separate_pools() -> None:
    ledger = QuotaLedger()
    ledger.admit("p", "m", tokens=1, now=0.0, wall=WALL)
    limits = Limits(rpm=1)
    assert ledger.check("p", "m", limits=limits, tokens=1, now=0.0, wall=WALL)
    assert ledger.check("q", "m", limits=limits, tokens=1, now=0.0, wall=WALL) == []
    assert ledger.check("p", "other", limits=limits, tokens=1, now=0.0, wall=WALL) == []


def _utc(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


def test_requests_per_day_reset_at_pacific_midnight_not_utc() -> None:
    ledger = QuotaLedger()
    limits = Limits(rpd=1)
    evening = _utc(2026, 1, 15, 20)  # 12:00 PST
    ledger.admit("p", "m", tokens=1, now=0.0, wall=evening)
    (violation,) = ledger.check("p", "m", limits=limits, tokens=1, now=1e5, wall=evening + 1)
    # Pacific midnight is 08:00 UTC in winter.
    assert violation.retry_after == _utc(2026, 1, 16, 8) - (evening + 1)
    assert ledger.check("p", "m", limits=limits, tokens=1, now=2e5, wall=_utc(2026, 1, 16, 1))
    assert ledger.check("p", "m", limits=limits, tokens=1, now=3e5, wall=_utc(2026, 1, 16, 8)) == []


def _occupying(admitted: list[float], at: float) -> int:
    """How many of the slots admitted at `admitted` occupy the instant `at`: a slot
    admitted at t occupies [t, t + 60), the ledger's own rule, float sum and all."""
    return sum(1 for t in admitted if t <= at < t + WINDOW_SECONDS)


@settings(max_examples=60, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=6),
    gaps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), min_size=1, max_size=40),
)
# 29.999999999999996 twice sums to 59.99999999999999, one ulp short of 60: a ledger
# that forgave 1e-9 let the slot of 0 leave early and admitted two in one minute.
@example(rpm=1, gaps=[0.0, 29.999999999999996, 29.999999999999996])
def test_no_sixty_second_window_ever_holds_more_than_the_limit(rpm: int, gaps: list[float]) -> None:
    ledger = QuotaLedger()
    limits = Limits(rpm=rpm)
    now = 0.0
    admitted: list[float] = []
    for gap in gaps:
        now += gap
        violations = ledger.check("p", "m", limits=limits, tokens=1, now=now, wall=WALL + now)
        if not violations:
            ledger.admit("p", "m", tokens=1, now=now, wall=WALL + now)
            admitted.append(now)
        else:
            # The advertised wait is exactly enough (a client waiting it on a FakeClock
            # is admitted), and no longer than it must be.
            wait = violations[0].retry_after
            assert wait > 0
            assert _occupying(admitted, now + wait) < rpm
            assert _occupying(admitted, max(now, now + wait - 1e-6)) >= rpm
    for at in admitted:
        assert _occupying(admitted, at) <= rpm


def test_a_client_waiting_the_advertised_time_exactly_is_admitted() -> None:
    # For these, `now + (end - now)` lands one ulp short of `end`: a ledger advertising
    # the plain difference would refuse the client again, for a wait of 1e-15 s.
    for first, now in (
        (1.399236386279079, 10.117922608034352),
        (3.005417322244819, 10.748632884766938),
    ):
        end = first + WINDOW_SECONDS
        assert now + (end - now) < end
        ledger = QuotaLedger()
        ledger.admit("p", "m", tokens=1, now=first, wall=WALL)
        (violation,) = ledger.check("p", "m", limits=Limits(rpm=1), tokens=1, now=now, wall=WALL)
        arrived = now + violation.retry_after
        assert arrived >= end
        assert now + math.nextafter(violation.retry_after, 0.0) < end  # and no longer
        assert ledger.check("p", "m", limits=Limits(rpm=1), tokens=1, now=arrived, wall=WALL) == []
