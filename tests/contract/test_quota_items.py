"""A call the server counts as several requests (a batch of embeddings: one per
item), on every store: each item takes a slot of the window and of the day, the
call waits for its last, and a refusal books nothing."""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.errors import DailyQuotaExhausted, QuotaWait, RequestRejected
from gemini_guard.quota import QuotaLimiter, QuotaStore

MODEL = "gemini-embedding-001"
PROJECT = "proj-items"


def limiter(store: QuotaStore, clock: FakeClock, **options: object) -> QuotaLimiter:
    limits = {MODEL: {"rpm": 12, "rpd": 20}}
    return QuotaLimiter(
        store=store,
        clock=clock,
        tier="free",
        limits=limits,  # type: ignore[arg-type]
        latency_allowance=0.0,
        **options,  # type: ignore[arg-type]
    )


def send(gate: QuotaLimiter, clock: FakeClock, items: int) -> float:
    """Reserve, wait, confirm and settle a call of `items` items; its wait."""
    permit = gate.reserve(project=PROJECT, model=MODEL, tokens=40, requests=items)
    clock.advance(permit.wait)
    assert gate.confirm(permit) == 0.0
    gate.settle(permit, sent=True, input_tokens=40)
    return permit.wait


def test_each_item_counts_and_the_call_waits_for_its_last(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock)
    assert send(gate, clock, 5) == 0.0
    assert send(gate, clock, 7) == 0.0  # 12 of 12
    usage = gate.usage(PROJECT, MODEL)
    assert (usage.requests, usage.day_requests, usage.tokens) == (12, 12, 80)
    assert send(gate, clock, 3) == pytest.approx(60.0)  # the window must empty first


def test_a_refused_call_gives_back_every_item_it_booked(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, max_wait=10.0)
    send(gate, clock, 10)
    with pytest.raises(QuotaWait):  # items 3 and 4 of 4 would wait a minute
        gate.reserve(project=PROJECT, model=MODEL, tokens=40, requests=4)
    assert gate.usage(PROJECT, MODEL).requests == 10
    clock.advance(60.0)
    send(gate, clock, 9)  # 19 of the day's 20
    with pytest.raises(DailyQuotaExhausted):
        gate.reserve(project=PROJECT, model=MODEL, tokens=40, requests=2)
    assert gate.usage(PROJECT, MODEL).day_requests == 19


def test_more_items_than_the_rpm_can_never_be_sent(store: QuotaStore) -> None:
    gate = limiter(store, FakeClock())
    with pytest.raises(RequestRejected, match="send at most 12 items per call"):
        gate.reserve(project=PROJECT, model=MODEL, tokens=0, requests=13)
    assert gate.usage(PROJECT, MODEL).requests == 0


async def test_asyncio_callers_book_every_item_too(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock)
    permit = await gate.areserve(project=PROJECT, model=MODEL, tokens=40, requests=12)
    assert await gate.aconfirm(permit) == 0.0
    await gate.asettle(permit, sent=True)
    later = await gate.areserve(project=PROJECT, model=MODEL, tokens=0, requests=2)
    await gate.aclose()
    assert later.wait == pytest.approx(60.0)


def test_tallied_calls_count_their_items(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = QuotaLimiter(store=store, clock=clock, tier="auto")
    gate.tally(project=PROJECT, model=MODEL, tokens=10, requests=30)
    usage = gate.usage(PROJECT, MODEL)
    assert (usage.requests, usage.tokens) == (30, 10)
