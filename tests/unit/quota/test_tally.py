"""Attempts sent before any limit is known (`tier="auto"`) are tallied, not booked.

`paces` says whether a (project, model) has anything to pace by; while it has not,
the Guard sends at once and `tally`s the attempt afterwards. The ledger must still
hold those attempts: once a 429 reveals the limit, pacing starts from the real usage.
"""

from __future__ import annotations

import random
from pathlib import Path

from google.genai import types

from gemini_guard.call import Engine, NoQuota, TallyingGate, run_sync
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import diagnose
from gemini_guard.policies import BreakerPolicy, MemoryBreakerStore, RetryPolicy
from gemini_guard.quota import QuotaLimiter
from gemini_guard.quota.events import Metric
from gemini_guard.telemetry import Telemetry
from tests.unit.guard._script import Script, ok, quota

FLASH = "gemini-2.5-flash"


def test_the_limiter_is_a_tallying_gate_and_no_quota_is_not() -> None:
    assert isinstance(QuotaLimiter(clock=FakeClock()), TallyingGate)
    assert not isinstance(NoQuota(), TallyingGate)


def test_auto_paces_nothing_until_told_and_a_known_tier_paces_at_once() -> None:
    assert not QuotaLimiter(clock=FakeClock(), tier="auto").paces("p", FLASH)
    assert QuotaLimiter(clock=FakeClock(), tier="free").paces("p", FLASH)
    # A model the table does not know has no limits even on a known tier.
    assert not QuotaLimiter(clock=FakeClock(), tier="free").paces("p", "my-tuned-model")


def test_tallied_attempts_are_in_the_ledger_when_it_is_read() -> None:
    clock = FakeClock()
    limiter = QuotaLimiter(clock=clock, tier="auto")
    for _ in range(5):  # fewer than a batch: still queued
        limiter.tally(project="p", model=FLASH, tokens=100, input_tokens=40)
        clock.advance(0.1)
    usage = limiter.usage("p", FLASH)
    assert usage.requests == 5
    assert usage.tokens == 5 * 40  # the server's count replaced the estimate
    assert usage.day_requests == 5


def test_a_429_reveals_the_limit_and_pacing_starts_from_the_tallied_usage() -> None:
    clock = FakeClock()
    limiter = QuotaLimiter(clock=clock, tier="auto")
    for _ in range(10):
        limiter.tally(project="p", model=FLASH, tokens=10)
        clock.advance(1.0)
    # The 11th is refused by the server: a free-tier 429 stating 10 per minute.
    limiter.tally(project="p", model=FLASH, tokens=10, diagnosis=diagnose(quota()))
    assert limiter.paces("p", FLASH)
    permit = limiter.reserve(project="p", model=FLASH, tokens=10)
    # Eleven slots in the window (answers at t=0..10; the refused one counts, as a
    # settled 429 does: the client cannot tell whether the server counted it). The
    # second, answered at t=1, leaves at 61; it is t=10 now. Without the tallies the
    # limiter would say "send now" into a full window.
    assert permit.wait == 51.0


def test_a_batch_is_written_once_it_is_full_or_a_second_old(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quota.db'}"
    clock = FakeClock()
    writer = QuotaLimiter(store=url, clock=clock, tier="auto")
    reader = QuotaLimiter(store=url, clock=clock, tier="auto")
    try:
        for _ in range(31):
            writer.tally(project="p", model=FLASH, tokens=1)
        assert reader.usage("p", FLASH).requests == 0  # queued in the writer
        writer.tally(project="p", model=FLASH, tokens=1)  # the 32nd: a full batch
        assert reader.usage("p", FLASH).requests == 32
        writer.tally(project="p", model=FLASH, tokens=1)
        clock.advance(1.0)
        writer.tally(project="p", model=FLASH, tokens=1)  # the oldest is a second old
        assert reader.usage("p", FLASH).requests == 34
        writer.tally(project="p", model=FLASH, tokens=1)
    finally:
        writer.close()  # writes what is still queued
        reader.close()
    assert QuotaLimiter(store=url, clock=clock).usage("p", FLASH).requests == 35


async def test_async_tally_queues_and_writes_the_same_way() -> None:
    clock = FakeClock()
    limiter = QuotaLimiter(clock=clock, tier="auto")
    for _ in range(40):
        await limiter.atally(project="p", model=FLASH, tokens=3)
    await limiter.atally(project="p", model=FLASH, tokens=3, diagnosis=diagnose(quota()))
    usage = limiter.usage("p", FLASH)
    assert usage.requests == 41  # the refused one counts too, as a settled 429 does
    assert limiter.paces("p", FLASH)
    await limiter.aclose()


async def test_async_learning_writes_shared_levels_off_the_event_loop(tmp_path: Path) -> None:
    import threading

    from gemini_guard.quota.shared_levels import Change, Level, SQLiteLevelStore
    from gemini_guard.quota.stores.base import QuotaKey

    class ThreadNoting(SQLiteLevelStore):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.threads: list[int] = []

        def update(
            self, key: QuotaKey, metric: Metric, change: Change, *, at: float
        ) -> Level | None:
            self.threads.append(threading.get_ident())
            return super().update(key, metric, change, at=at)

    path = tmp_path / "quota.db"
    limiter = QuotaLimiter(store=f"sqlite:///{path}", clock=FakeClock(), tier="free")
    noting = ThreadNoting(path)
    limiter._adaptive._shared = noting  # type: ignore[union-attr]  # observe the real store
    permit = await limiter.areserve(project="p", model=FLASH, tokens=10)
    # A 429 stating 10 RPM where the table says 10 too: the ceiling is written anyway.
    await limiter.asettle(permit, sent=True, diagnosis=diagnose(quota()))
    assert noting.threads  # the level was written...
    assert threading.get_ident() not in noting.threads  # ...not from the loop's thread
    await limiter.aclose()


def _engine(clock: FakeClock, limiter: QuotaLimiter) -> Engine:
    return Engine(
        clock=clock,
        retry=RetryPolicy(jitter="none", server_delay_jitter=0.0),
        breaker=BreakerPolicy(),
        breaker_store=MemoryBreakerStore(),
        telemetry=Telemetry(),
        quota=limiter,
        rng=random.Random(7),
    )


def test_the_token_estimate_is_made_only_when_a_reservation_or_a_tally_needs_it() -> None:
    clock = FakeClock()
    limiter = QuotaLimiter(clock=clock, tier="auto")
    estimates: list[str] = []

    def estimate() -> int:
        estimates.append("made")
        return 30

    def run(outcomes: dict[str, list[object]]) -> None:
        steps = _engine(clock, limiter).steps((FLASH,), tokens=estimate, input_tokens_of=_counted)
        run_sync(steps, clock=clock, quota=limiter, send=Script(outcomes).send)

    # Nothing known yet, and the answer counts its own tokens: no estimate at all.
    run({FLASH: [ok(FLASH, prompt_tokens=12)]})
    assert estimates == []
    # A refused attempt has no count: the tally takes the estimate (made once).
    run({FLASH: [quota(per="Minute", delay="1s"), ok(FLASH, prompt_tokens=12)]})
    assert estimates == ["made"]
    assert limiter.paces("default", FLASH)  # the 429 told the limit
    # Now the model is paced: every call reserves, so every call estimates.
    estimates.clear()
    run({FLASH: [ok(FLASH, prompt_tokens=12)]})
    assert estimates == ["made"]


def _counted(response: types.GenerateContentResponse) -> int | None:
    usage = response.usage_metadata
    return usage.prompt_token_count if usage else None
