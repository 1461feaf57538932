"""The confirm step, on every store: a permit is a plan, checked again before sending.

A request planned early but sent late is counted by the server late; the requests
planned after it, from the ledger's older picture, could then overfill a window.
`confirm` re-checks a slot against what was really sent, at the moment of sending.
"""

from __future__ import annotations

import pytest

from gemini_guard.call import NoQuota, Permit
from gemini_guard.clock import FakeClock
from gemini_guard.quota import QuotaLimiter, QuotaStore

MODEL = "gemini-2.5-flash"
PROJECT = "proj-c"


def limiter(store: QuotaStore, clock: FakeClock, rpm: int, **options: object) -> QuotaLimiter:
    return QuotaLimiter(
        store=store,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": rpm}},
        latency_allowance=0.0,
        **options,  # type: ignore[arg-type]
    )


def reserve(gate: QuotaLimiter, tokens: int = 0) -> Permit:
    return gate.reserve(project=PROJECT, model=MODEL, tokens=tokens)


def start_of(permit: Permit) -> float:
    return permit.ticket.start  # type: ignore[attr-defined,no-any-return]


def test_a_late_sender_delays_the_plans_made_after_it(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, rpm=2)
    t0 = clock.time()
    late, prompt = reserve(gate), reserve(gate)
    third = reserve(gate)
    assert start_of(third) == pytest.approx(t0 + 60.0)  # planned from the picture at t0
    assert gate.confirm(prompt) == 0.0
    clock.advance(1.0)
    gate.settle(prompt, sent=True)  # answered at t0+1
    clock.advance(29.0)  # the other one's caller was stalled for 30 s
    assert gate.confirm(late) == 0.0  # its window still has room: send it now
    clock.advance(1.0)
    gate.settle(late, sent=True)  # answered at t0+31
    clock.set_time(t0 + 60.0)
    # Sending at t0+60 could make three in the server's window (t0+0.5, t0+60]:
    # the one answered at t0+1 must leave first.
    assert gate.confirm(third) == pytest.approx(1.0, abs=1e-6)
    clock.advance(1.0)
    assert gate.confirm(third) == 0.0


def test_plans_made_after_a_slot_do_not_hold_it_back(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, rpm=2)
    first, second, queued = reserve(gate), reserve(gate), reserve(gate)
    assert queued.wait == pytest.approx(60.0)
    assert gate.confirm(first) == 0.0  # the queued plan has not been sent: it does not count
    assert gate.confirm(second) == 0.0
    clock.advance(60.0)
    gate.settle(first, sent=True)
    gate.settle(second, sent=True)
    # Both were answered at +60: the server may have counted them then.
    assert gate.confirm(queued) == pytest.approx(60.0, abs=1e-6)


def test_an_unanswered_late_slot_counts_until_it_answers(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, rpm=1)
    t0 = clock.time()
    slow = reserve(gate)
    nxt = reserve(gate)
    assert start_of(nxt) == pytest.approx(t0 + 60.0)
    assert gate.confirm(slow) == 0.0
    clock.set_time(t0 + 60.0)  # still no answer: it may be counted any moment now
    assert gate.confirm(nxt) == pytest.approx(60.0, abs=1e-6)
    gate.settle(slow, sent=True)  # answered at t0+60
    clock.advance(60.0)
    assert gate.confirm(nxt) == 0.0


def test_confirming_a_released_slot_costs_nothing(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, rpm=1)
    permit = reserve(gate)
    gate.settle(permit, sent=False)
    assert gate.confirm(permit) == 0.0
    assert gate.usage(PROJECT, MODEL).requests == 0


def test_confirm_keeps_tokens_exact(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = QuotaLimiter(
        store=store,
        clock=clock,
        tier="free",
        limits={MODEL: {"tpm": 1000, "rpm": 100}},
        latency_allowance=0.0,
    )
    t0 = clock.time()
    big = reserve(gate, 700)
    small = reserve(gate, 300)
    later = reserve(gate, 500)
    assert start_of(later) == pytest.approx(t0 + 60.0)
    assert gate.confirm(small) == 0.0
    gate.settle(small, sent=True)
    clock.advance(20.0)
    assert gate.confirm(big) == 0.0  # sent 20 s late
    gate.settle(big, sent=True)
    clock.set_time(t0 + 60.0)
    # 700 tokens counted at t0+20 are in the window until t0+80.
    assert gate.confirm(later) == pytest.approx(20.0, abs=1e-6)


async def test_aconfirm_matches_confirm(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, rpm=1)
    first = await gate.areserve(project=PROJECT, model=MODEL, tokens=0)
    second = await gate.areserve(project=PROJECT, model=MODEL, tokens=0)
    assert await gate.aconfirm(first) == 0.0
    clock.advance(10.0)
    await gate.asettle(first, sent=True)
    clock.advance(50.0)
    assert await gate.aconfirm(second) == pytest.approx(10.0, abs=1e-6)
    await gate.aclose()


async def test_no_quota_never_waits() -> None:
    gate = NoQuota()
    permit = gate.reserve(project=PROJECT, model=MODEL, tokens=5)
    assert gate.confirm(permit) == 0.0
    assert await gate.aconfirm(permit) == 0.0
