"""Async calls ask shared breaker stores (SQLite, Redis) without blocking the event loop.

The engine yields a breaker kept in a shared store as `Admit` / `Record` effects; the
async driver awaits the store's `aload` / `aupdate`, which run SQLite's I/O in a worker
thread and Redis's on redis-py's asyncio client. A store that dies after the answer
came must not lose the answer.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from google.genai import types

from gemini_guard.call import AttemptPlan, Engine, Steps, run_async, run_sync
from gemini_guard.clock import FakeClock
from gemini_guard.errors import AttemptsExhausted, StoreError
from gemini_guard.policies import (
    AsyncBreakerStore,
    BreakerPolicy,
    BreakerSnapshot,
    BreakerStore,
    MemoryBreakerStore,
    RedisBreakerStore,
    RetryPolicy,
    SQLiteBreakerStore,
)
from gemini_guard.policies.breaker import Change
from gemini_guard.telemetry import Telemetry
from tests.support.redis_server import RedisServer
from tests.unit.guard._script import internal, ok

FLASH = "gemini-2.5-flash"


class ThreadNotingSQLiteStore(SQLiteBreakerStore):
    """The real SQLite store, noting which thread each of its reads and writes ran on."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: list[int] = []

    def load(self, key: str) -> BreakerSnapshot | None:
        self.threads.append(threading.get_ident())
        return super().load(key)

    def update(self, key: str, change: Change) -> BreakerSnapshot:
        self.threads.append(threading.get_ident())
        return super().update(key, change)


def engine(store: BreakerStore, clock: FakeClock) -> Engine:
    return Engine(
        clock=clock,
        retry=RetryPolicy(jitter="none", server_delay_jitter=0.0),
        breaker=BreakerPolicy(failure_threshold=2),
        breaker_store=store,
        telemetry=Telemetry([]),
        rng=random.Random(3),
    )


def test_shared_stores_offer_awaitable_twins_and_memory_does_not() -> None:
    assert issubclass(SQLiteBreakerStore, AsyncBreakerStore)
    assert issubclass(RedisBreakerStore, AsyncBreakerStore)
    assert not isinstance(MemoryBreakerStore(), AsyncBreakerStore)


async def test_async_calls_do_the_store_io_off_the_event_loop_thread(tmp_path: Path) -> None:
    store = ThreadNotingSQLiteStore(tmp_path / "state.db")
    clock = FakeClock()
    eng = engine(store, clock)
    outcomes: list[Exception | types.GenerateContentResponse] = [
        internal(),
        internal(),
        ok(FLASH),
    ]

    async def send(plan: AttemptPlan) -> types.GenerateContentResponse:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    loop_thread = threading.get_ident()
    steps: Steps[types.GenerateContentResponse] = eng.steps(
        (FLASH,), tokens=1, input_tokens_of=lambda _: 1
    )
    with pytest.raises(AttemptsExhausted, match="circuit breaker is open"):
        # Two 500s open the breaker (threshold 2): the call ends without a third try.
        await run_async(steps, clock=clock, quota=eng.quota, send=send)
    assert len(outcomes) == 1  # the third answer was never asked for
    assert store.threads  # the store was used...
    assert loop_thread not in store.threads  # ...never from the loop's own thread
    snapshot = store.load(f"default/{FLASH}")
    assert snapshot is not None
    assert snapshot.state == "open"
    store.close()


def test_sync_calls_use_the_store_on_the_calling_thread(tmp_path: Path) -> None:
    store = ThreadNotingSQLiteStore(tmp_path / "state.db")
    clock = FakeClock()
    eng = engine(store, clock)
    steps: Steps[types.GenerateContentResponse] = eng.steps(
        (FLASH,), tokens=1, input_tokens_of=lambda _: 1
    )
    _, info = run_sync(steps, clock=clock, quota=eng.quota, send=lambda p: ok(p.model))
    assert info.model == FLASH
    assert set(store.threads) == {threading.get_ident()}
    snapshot = store.load(f"default/{FLASH}")
    assert snapshot is not None
    assert len(snapshot.outcomes) == 1  # the success was recorded
    store.close()


@pytest.mark.redis
@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_a_redis_dying_after_the_answer_does_not_lose_it(
    redis_server: RedisServer, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisBreakerStore.from_url(f"{redis_server.url}?on_outage=fail&socket_timeout=1")
    clock = FakeClock()
    eng = engine(store, clock)

    def send(plan: AttemptPlan) -> types.GenerateContentResponse:
        redis_server.stop()  # the answer is in hand; the store is gone
        return ok(plan.model)

    async def asend(plan: AttemptPlan) -> types.GenerateContentResponse:
        return send(plan)

    steps: Steps[types.GenerateContentResponse] = eng.steps(
        (FLASH,), tokens=1, input_tokens_of=lambda _: 1
    )
    if driver == "sync":
        response, info = run_sync(steps, clock=clock, quota=eng.quota, send=send)
    else:
        response, info = await run_async(steps, clock=clock, quota=eng.quota, send=asend)
    assert info.model == FLASH
    assert response.text == "hi"
    assert "failed to record an attempt" in caplog.text
    # With the store still dead, the next call fails closed, as on_outage=fail asks.
    steps = eng.steps((FLASH,), tokens=1, input_tokens_of=lambda _: 1)
    with pytest.raises(StoreError):
        run_sync(steps, clock=clock, quota=eng.quota, send=send)
    store.close()
