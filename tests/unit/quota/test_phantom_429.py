"""Bare 429s: a real cut is learned, noise is not, and a wrong cut is soon undone.

Workers paced by a QuotaLimiter rehearse against a simulated server on a FakeClock
(`_simulated`): one that refuses a share of requests at random whatever the rate
(the phantom 429s of December 2025, Vertex's shared capacity), and one that
enforces a lower limit than configured and says so only with bare 429s.
"""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation
from gemini_guard.quota import LimitLearned, LimitRecovered, PhantomRateLimit, QuotaLimiter
from gemini_guard.telemetry import PhantomRateLimits, quota_notice
from tests.unit.quota._simulated import BARE_429, Outcome, Server, rehearse

PRO = "gemini-2.5-pro"  # tier 1: 150 RPM
FLASH = "gemini-2.5-flash"  # free tier: 10 RPM


def limiter(clock: FakeClock, tier: str, events: list[object]) -> QuotaLimiter:
    return QuotaLimiter(clock=clock, tier=tier, on_event=events.append, latency_allowance=0.0)


def succeeded_in_the_minute_before(outcomes: list[Outcome], index: int) -> int:
    # A millisecond off the edge: the limiter reads the wall clock, the outcomes
    # carry seconds since the start, and the two round differently.
    at = outcomes[index].at
    return sum(1 for o in outcomes[: index + 1] if o.ok and o.at > at - 60.0 + 1e-3)


def of(kind: type[object], events: list[object]) -> list[object]:
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("noise", [0.1, 0.4, 0.8])
def test_random_bare_429s_at_a_steady_rate_change_nothing(noise: float) -> None:
    # Four workers, a request every 6 s each: 40 RPM, a quarter of the 150 allowed.
    clock, events = FakeClock(), list[object]()
    gate = limiter(clock, "tier1", events)
    server = Server(noise=noise)
    outcomes = rehearse(
        gate, clock, server, model=PRO, workers=4, seconds=300, latency=1.0, think=5.0
    )
    assert {o.paced_by for o in outcomes} == {150}  # never cut, not even for a moment
    assert of(LimitLearned, events) == []
    # Nothing waited for quota: every worker sent one request per 6 s all along.
    assert len(outcomes) == 4 * 50
    refused = sum(not o.ok for o in outcomes)
    assert abs(refused / len(outcomes) - noise) < 0.1
    # Told, with figures, at most once a minute.
    told = of(PhantomRateLimit, events)
    assert 1 <= len(told) <= 5
    assert all(isinstance(e, PhantomRateLimit) and e.limit == 150 for e in told)


@pytest.mark.parametrize("noise", [0.1, 0.4, 0.8])
def test_random_bare_429s_never_cut_the_limit_below_what_succeeds(noise: float) -> None:
    # Four workers with no pause: 240 requests a minute want to go, pacing binds at 150.
    clock, events = FakeClock(), list[object]()
    gate = limiter(clock, "tier1", events)
    outcomes = rehearse(
        gate, clock, Server(noise=noise), model=PRO, workers=4, seconds=300, latency=1.0
    )
    for index, outcome in enumerate(outcomes):
        assert outcome.paced_by is not None
        assert outcome.paced_by >= succeeded_in_the_minute_before(outcomes, index)
    # A cut made at the wall of the configured limit is small and is soon undone.
    assert min(o.paced_by or 0 for o in outcomes) >= 100
    assert outcomes[-1].paced_by is not None
    assert outcomes[-1].paced_by >= 140
    # The server admitted nearly all the configured limit allows, minus the noise.
    served = sum(o.ok for o in outcomes)
    assert served >= 0.8 * min(150.0, (1 - noise) * 240) * 5


def test_a_cut_near_the_limit_is_learned_from_bare_429s() -> None:
    # Configured 10 RPM; the server enforces 7 and says so only with bare 429s.
    clock, events = FakeClock(), list[object]()
    gate = limiter(clock, "free", events)
    outcomes = rehearse(
        gate, clock, Server(limit=7), model=FLASH, workers=2, seconds=300, latency=0.5
    )
    learned = of(LimitLearned, events)
    assert learned
    assert isinstance(learned[0], LimitLearned)
    assert learned[0].enforced == 7
    assert learned[0].at - 1_767_225_600.0 < 5  # at the first wall
    later = [o for o in outcomes if o.at >= 60]
    assert all(o.paced_by is not None and 7 <= o.paced_by <= 8 for o in later)
    # The price of a limit only bare 429s reveal: a probe above it now and then.
    assert sum(not o.ok for o in later) <= 3 * 4


def test_a_deep_cut_is_learned_after_a_minute_long_wall() -> None:
    # Configured 10 RPM; the server enforces 3, far below: a bare 429 there is not
    # taken for a limit at once (a phantom would look the same), only once refusals
    # have held for a whole minute at a level the server never admitted meanwhile.
    clock, events = FakeClock(), list[object]()
    gate = limiter(clock, "free", events)
    outcomes = rehearse(
        gate, clock, Server(limit=3), model=FLASH, workers=2, seconds=300, latency=0.5
    )
    learned = [e for e in of(LimitLearned, events) if isinstance(e, LimitLearned)]
    assert 60 <= learned[0].at - 1_767_225_600.0 < 65
    assert learned[0].enforced <= 4
    after = [o for o in outcomes if o.at >= 130]
    assert all(o.paced_by is not None and o.paced_by <= 5 for o in after)
    assert sum(not o.ok for o in after) <= 3 * 4  # probes, not a wall


def named_429(limit: int | None = None) -> Diagnosis:
    return Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="Quota exceeded for metric: generate_content_paid_tier_requests",
        category=Category.RATE_LIMITED,
        retryable=True,
        quota=QuotaViolation(
            scope="minute",
            unit="requests",
            tier="paid",
            limit=limit,
            model=PRO,
            quota_id="GenerateRequestsPerMinutePerProjectPerModel",
            metric=None,
        ),
    )


def test_a_wrong_cut_recovers_within_a_minute_of_clean_answers() -> None:
    clock, events = FakeClock(), list[object]()
    gate = limiter(clock, "tier1", events)
    gate.settle(gate.reserve(project="p", model=PRO, tokens=10), sent=True, diagnosis=named_429())
    assert gate.budget("p", PRO).requests == 105  # cut by 30%
    # Two workers, a request every 2 s each: 60 RPM, all served.
    outcomes = rehearse(
        gate, clock, Server(), model=PRO, workers=2, seconds=60, latency=1.0, think=1.0
    )
    assert all(o.ok for o in outcomes)
    assert [o.paced_by for o in outcomes if o.at <= 14] == [105] * 14
    assert outcomes[-1].paced_by == 150
    steps = [e.effective for e in of(LimitRecovered, events) if isinstance(e, LimitRecovered)]
    assert steps == [120, 135, 150]  # additive: 10% of the ceiling every 15 s


def test_a_bare_429_frees_its_slot_and_one_naming_a_quota_keeps_it() -> None:
    clock = FakeClock()
    gate = limiter(clock, "free", [])
    for diagnosis in (BARE_429, named_429(limit=10)):
        permit = gate.reserve(project="p", model=FLASH, tokens=10)
        assert gate.confirm(permit) == 0.0
        gate.settle(permit, sent=True, diagnosis=diagnosis)
    # The bare one was refused for want of capacity, not counted against the quota.
    assert gate.usage("p", FLASH).requests == 1


def test_the_phantom_event_gives_the_figures_in_english_and_chinese() -> None:
    event = PhantomRateLimit(
        project="p", model=PRO, refused=7, rate=1, limit=150, tier="tier1", at=5.0
    )
    assert "7 bare 429s on gemini-2.5-pro (project p)" in event.message
    assert "429s at 0.7% of your Tier 1 limit (150 RPM)" in event.message
    assert "phantom-429 problem Google acknowledged in December 2025" in event.message
    assert "contact support" in event.message
    assert "Tier 1限额（150 RPM）的 0.7%" in event.message_zh
    assert "幻影 429" in event.message_zh
    notice = quota_notice(event)
    assert isinstance(notice, PhantomRateLimits)
    assert notice.to_dict() == {
        "event": "phantom_rate_limits",
        "timestamp": 5.0,
        "call_id": "",
        "model": PRO,
        "notice": "phantom_429",
        "message": event.message,
        "project": "p",
        "metric": "rpm",
        "limit": 150,
        "refused": 7,
        "rate": 1,
        "share": 1 / 150,
        "tier": "tier1",
        "message_zh": event.message_zh,
    }


def test_a_phantom_429_is_reported_once_a_minute_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, events = FakeClock(), list[object]()
    gate = limiter(clock, "tier1", events)
    with caplog.at_level("WARNING", logger="gemini_guard"):
        for _ in range(6):
            permit = gate.reserve(project="p", model=PRO, tokens=10)
            assert gate.confirm(permit) == 0.0
            clock.advance(1.0)
            gate.settle(permit, sent=True, diagnosis=BARE_429)
    told = of(PhantomRateLimit, events)
    assert len(told) == 1  # after three, then quiet for the minute
    assert isinstance(told[0], PhantomRateLimit)
    assert (told[0].refused, told[0].rate, told[0].limit) == (3, 0, 150)
    assert gate.budget("p", PRO).requests == 150
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "phantom-429" in warnings[0]
    assert "幻影 429" in warnings[0]
