"""The quota contract: every store (memory, SQLite, Redis) paces exactly the same way.

Time is a FakeClock: waits are read from permits, never slept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
from collections import Counter
from typing import Any

import pytest

from gemini_guard.call import Permit
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation
from gemini_guard.errors import DailyQuotaExhausted, QuotaWait, RequestRejected
from gemini_guard.quota import LimitLearned, QuotaKey, QuotaLimiter, QuotaStore
from tests.contract.conftest import StoreFactory

MODEL = "gemini-2.5-flash"
PROJECT = "proj-a"
UTC = dt.UTC


def limiter(store: QuotaStore, clock: FakeClock, **options: Any) -> QuotaLimiter:
    options.setdefault("latency_allowance", 0.0)
    options.setdefault("tier", "free")
    return QuotaLimiter(store=store, clock=clock, **options)


def at(clock: FakeClock, wall: float) -> None:
    clock.set_time(wall)


def reserve(gate: QuotaLimiter, tokens: int = 0, *, project: str = PROJECT) -> Permit:
    return gate.reserve(project=project, model=MODEL, tokens=tokens)


def start_of(permit: Permit) -> float:
    return permit.ticket.start  # type: ignore[attr-defined,no-any-return]


def rate_limited(*, limit: int | None = None, tier: str = "free") -> Diagnosis:
    return Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="Quota exceeded",
        category=Category.RATE_LIMITED,
        retryable=True,
        retry_after=10.0,
        quota=QuotaViolation(
            scope="minute",
            unit="requests",
            tier=tier,  # type: ignore[arg-type]
            limit=limit,
            model=MODEL,
            quota_id="GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            metric="generativelanguage.googleapis.com/generate_content_free_tier_requests",
        ),
    )


# -- sliding window ----------------------------------------------------------------


def test_n_plus_first_waits_exactly_until_the_oldest_leaves(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 5}})
    t0 = clock.time()
    for offset in (0, 10, 20, 30, 40):
        at(clock, t0 + offset)
        permit = reserve(gate)
        assert permit.wait == 0.0
        gate.settle(permit, sent=True)
    sixth = reserve(gate)  # at t0+40: the one sent at t0 leaves the window at t0+60
    assert sixth.wait == pytest.approx(20.0, abs=1e-6)
    seventh = reserve(gate)  # queued behind it: the one of t0+10 leaves at t0+70
    assert start_of(seventh) == pytest.approx(t0 + 70.0, abs=1e-6)


def test_never_more_than_the_limit_in_any_window_and_no_slack(store: QuotaStore) -> None:
    """Random arrivals; each request is sent at its start and answered at once."""
    rng = random.Random(1234)
    limit, period = 7, 60.0
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": limit}})
    t0 = clock.time()
    arrivals = sorted(t0 + rng.uniform(0, 400) for _ in range(80))
    pending: list[Permit] = []
    starts: list[float] = []
    while arrivals or pending:
        next_start = min((start_of(p) for p in pending), default=float("inf"))
        if arrivals and arrivals[0] < next_start:
            at(clock, arrivals.pop(0))
            permit = reserve(gate)
            starts.append(start_of(permit))
            pending.append(permit)
        else:
            due = min(pending, key=start_of)
            pending.remove(due)
            at(clock, max(clock.time(), start_of(due)))
            gate.settle(due, sent=True)
    eps = 1e-6
    for start in starts:
        in_window = sum(1 for s in starts if start - period < s <= start + eps)
        assert in_window <= limit
    for index, start in enumerate(starts):
        earlier = starts[:index]
        if any(abs(s + period - start) < eps for s in earlier):
            # It waited: just before its start the window was full.
            assert sum(1 for s in earlier if start - period - eps < s < start) == limit


def test_slot_is_recorded_at_response_time(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 2}})
    t0 = clock.time()
    first = reserve(gate)
    clock.advance(5.0)  # the answer takes 5 s: the server may have counted it up to then
    gate.settle(first, sent=True)
    second = reserve(gate)
    gate.settle(second, sent=True)
    third = reserve(gate)
    assert start_of(third) == pytest.approx(t0 + 65.0, abs=1e-6)


def test_unsent_request_releases_its_slot(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 2}})
    first, second = reserve(gate), reserve(gate)
    gate.settle(first, sent=True)
    gate.settle(second, sent=False)
    assert reserve(gate).wait == 0.0


def test_in_flight_slot_is_held_for_its_latency_allowance(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 1}}, latency_allowance=3.0)
    t0 = clock.time()
    reserve(gate)  # not answered yet
    assert start_of(reserve(gate)) == pytest.approx(t0 + 63.0, abs=1e-6)


def test_unanswered_slot_is_held_past_its_allowance(store: QuotaStore) -> None:
    """A request still unanswered may still be on its way: it counts until it answers."""
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 1}}, latency_allowance=2.0)
    t0 = clock.time()
    slow = reserve(gate)
    clock.advance(30.0)  # far past its 2 s allowance, and still no answer
    assert start_of(reserve(gate)) == pytest.approx(t0 + 90.0, abs=1e-6)
    gate.settle(slow, sent=True)  # answered at +30: it may have been counted then
    assert gate.usage(PROJECT, MODEL).next_free == pytest.approx(t0 + 90.0, abs=1e-6)


# -- tokens -------------------------------------------------------------------------


def test_tokens_are_reserved_then_corrected_from_the_server_count(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"tpm": 1000}})
    t0 = clock.time()
    first = reserve(gate, 600)
    assert first.wait == 0.0
    gate.settle(first, sent=True, input_tokens=300)  # the estimate was high
    second = reserve(gate, 500)
    assert second.wait == 0.0  # 300 + 500 fit
    gate.settle(second, sent=True, input_tokens=650)  # this one was low
    third = reserve(gate, 100)  # 300 + 650 + 100 > 1000: wait until the first leaves
    assert start_of(third) == pytest.approx(t0 + 60.0, abs=1e-6)
    usage = gate.usage(PROJECT, MODEL)
    assert usage.day_tokens == 300 + 650 + 100


def test_request_over_the_token_limit_is_rejected_at_once(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"tpm": 1000}})
    with pytest.raises(RequestRejected) as caught:
        reserve(gate, 1001)
    assert caught.value.diagnosis.category is Category.REQUEST_TOO_LARGE
    assert "1001" in str(caught.value)
    assert gate.usage(PROJECT, MODEL).requests == 0  # nothing was booked
    assert reserve(gate, 1000).wait == 0.0


def test_fifo_big_requests_are_not_overtaken_by_small_ones(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"tpm": 1000, "rpm": 100}})
    rng = random.Random(7)
    starts = [start_of(reserve(gate, rng.choice([10, 200, 900]))) for _ in range(40)]
    assert starts == sorted(starts)
    assert starts[-1] > starts[0]  # they did queue


# -- waiting limits -----------------------------------------------------------------


def test_quota_wait_beyond_max_wait_books_nothing(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 2}}, max_wait=dt.timedelta(seconds=30))
    gate.settle(reserve(gate), sent=True)
    gate.settle(reserve(gate), sent=True)
    with pytest.raises(QuotaWait) as caught:
        reserve(gate)
    assert caught.value.wait == pytest.approx(60.0, abs=1e-6)
    assert caught.value.diagnosis.category is Category.RATE_LIMITED
    assert gate.usage(PROJECT, MODEL).requests == 2
    clock.advance(31.0)  # now the wait is 29 s: allowed
    assert reserve(gate).wait == pytest.approx(29.0, abs=1e-6)


# -- per day ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day_start", "expected_reset"),
    [
        # Spring forward: 2026-03-08 has 23 hours; it ends at 07:00 UTC on the 9th.
        (dt.datetime(2026, 3, 8, 8, 0, tzinfo=UTC), dt.datetime(2026, 3, 9, 7, 0, tzinfo=UTC)),
        # Fall back: 2026-11-01 has 25 hours; it ends at 08:00 UTC on the 2nd.
        (dt.datetime(2026, 11, 1, 7, 0, tzinfo=UTC), dt.datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_day_quota_resets_at_pacific_midnight_across_dst(
    store: QuotaStore, day_start: dt.datetime, expected_reset: dt.datetime
) -> None:
    clock = FakeClock(start=day_start.timestamp() + 60.0)  # 00:01 Pacific
    gate = limiter(store, clock, limits={MODEL: {"rpd": 3}})
    for _ in range(3):
        gate.settle(reserve(gate), sent=True)
        clock.advance(3600.0)
    with pytest.raises(DailyQuotaExhausted) as caught:
        reserve(gate)
    assert caught.value.reset_at == expected_reset.timestamp()
    assert caught.value.diagnosis.category is Category.DAILY_QUOTA_EXHAUSTED
    at(clock, expected_reset.timestamp() - 1.0)
    with pytest.raises(DailyQuotaExhausted):
        reserve(gate)
    at(clock, expected_reset.timestamp())
    assert reserve(gate).wait == 0.0


def test_server_day_exhaustion_blocks_until_midnight(store: QuotaStore) -> None:
    clock = FakeClock(start=dt.datetime(2026, 1, 10, 20, 0, tzinfo=UTC).timestamp())
    gate = limiter(store, clock, tier="auto")
    permit = reserve(gate)
    spent = Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="Quota exceeded for metric: generate_content_free_tier_requests, limit: 250",
        category=Category.DAILY_QUOTA_EXHAUSTED,
        retryable=False,
    )
    gate.settle(permit, sent=True, diagnosis=spent)
    with pytest.raises(DailyQuotaExhausted) as caught:
        reserve(gate)
    midnight = dt.datetime(2026, 1, 11, 8, 0, tzinfo=UTC).timestamp()
    assert caught.value.reset_at == midnight
    at(clock, midnight)
    assert reserve(gate).wait == 0.0


# -- adaptive -----------------------------------------------------------------------


def test_unexpected_429_cuts_pacing_and_it_recovers(store: QuotaStore) -> None:
    clock = FakeClock()
    events: list[object] = []
    gate = limiter(store, clock, on_event=events.append)  # free tier: 10 RPM
    first = reserve(gate)
    gate.settle(first, sent=True, diagnosis=rate_limited())
    learned = [e for e in events if isinstance(e, LimitLearned)]
    assert [(e.metric, e.enforced, e.configured) for e in learned] == [("rpm", 7, 10)]
    permits = [reserve(gate) for _ in range(7)]  # with the first: 8 > 7 in the window
    assert [p.wait for p in permits[:6]] == [0.0] * 6
    assert permits[6].wait == pytest.approx(60.0, abs=1e-6)
    # Recovery: a step of 10% of the limit each 15 s period paced at the level before.
    steps = []
    for _ in range(3):
        clock.advance(15.0)
        steps.append(gate.budget(PROJECT, MODEL).requests)
    assert steps == [8, 9, 10]
    clock.advance(60.0 * 10)
    assert gate.budget(PROJECT, MODEL).requests == 10  # recovered, never above configured


def test_quota_value_in_a_429_sets_the_limit(store: QuotaStore) -> None:
    clock = FakeClock()
    events: list[object] = []
    gate = limiter(store, clock, tier="auto", on_event=events.append)
    assert gate.budget(PROJECT, MODEL).requests is None  # auto: nothing known yet
    gate.settle(reserve(gate), sent=True, diagnosis=rate_limited(limit=3))
    learned = [e for e in events if isinstance(e, LimitLearned)]
    assert len(learned) == 1
    assert learned[0].enforced == 3
    assert "server enforces about 3 RPM on gemini-2.5-flash" in learned[0].message
    waits = [reserve(gate).wait for _ in range(3)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(60.0, abs=1e-6)
    # The FreeTier quota id revealed the tier: the free table's RPD now applies too.
    assert gate.budget(PROJECT, MODEL).day_requests == 250


# -- concurrency --------------------------------------------------------------------


def test_threads_reserving_at_once_never_exceed_the_limit(make_store: StoreFactory) -> None:
    clock = FakeClock()  # time stands still: every slot is decided by the ledger alone
    limit, threads, each = 25, 8, 20
    gates = [limiter(make_store(), clock, limits={MODEL: {"rpm": limit}}) for _ in range(threads)]
    starts: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(gate: QuotaLimiter) -> None:
        barrier.wait()
        mine = [start_of(reserve(gate)) for _ in range(each)]
        with lock:
            starts.extend(mine)

    workers = [threading.Thread(target=work, args=(gate,)) for gate in gates]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    t0 = clock.time()
    by_minute = Counter(round(start - t0) for start in starts)
    # 160 requests at 25 per minute: 25 at +0, +60, ..., +300 and 10 at +360.
    assert by_minute == {60 * m: 25 for m in range(6)} | {360: 10}


async def test_async_tasks_pace_like_threads(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 3}})
    t0 = clock.time()
    permits = await asyncio.gather(
        *(gate.areserve(project=PROJECT, model=MODEL, tokens=5) for _ in range(7))
    )
    assert sorted(start_of(p) - t0 for p in permits) == pytest.approx(
        [0, 0, 0, 60, 60, 60, 120], abs=1e-6
    )

    async def send(permit: Permit) -> None:
        await clock.asleep(permit.wait)
        await gate.asettle(permit, sent=True, input_tokens=4)

    await asyncio.gather(*(send(p) for p in permits))
    day_tokens = store.usage(QuotaKey(PROJECT, MODEL), now=clock.time()).day_tokens
    await gate.aclose()
    assert day_tokens == 7 * 4  # corrected from 5 each


# -- reading ------------------------------------------------------------------------


def test_usage_and_keys(store: QuotaStore) -> None:
    clock = FakeClock()
    gate = limiter(store, clock, limits={MODEL: {"rpm": 5}})
    for _ in range(3):
        gate.settle(reserve(gate, 10), sent=True)
    reserve(gate, 10, project="proj-b")
    usage = gate.usage(PROJECT, MODEL)
    assert (usage.requests, usage.tokens, usage.day_requests) == (3, 30, 3)
    assert usage.next_free == pytest.approx(clock.time() + 60.0)
    assert [(k.project, k.model) for k in store.ledgers()] == [
        ("proj-a", MODEL),
        ("proj-b", MODEL),
    ]
    clock.advance(61.0)
    assert gate.usage(PROJECT, MODEL).requests == 0
