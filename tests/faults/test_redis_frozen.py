"""A frozen Redis (SIGSTOP) costs a call no more than a dead one: a short per-operation
timeout, then the local fallback until `retry_after`; after SIGCONT the stores
reconnect and share state again. A real redis-server, the real SDK, the emulator."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard
from gemini_guard.quota import QuotaLimiter
from gemini_guard.quota.events import StoreDegraded, StoreRecovered
from gemini_guard.quota.stores.redis import RedisStore
from gemini_guard.redis_url import SOCKET_TIMEOUT
from tests.support.redis_server import RedisServer, redis_server
from tests.support.sdk_clients import emulator_client

__all__ = ["redis_server"]

pytestmark = pytest.mark.redis
FLASH = "gemini-2.5-flash"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def paced_server(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve(Scenario(name="frozen-redis", default_tier="tier1"), clock=clock) as running:
        yield running


def _pause(server: RedisServer, sig: signal.Signals) -> None:
    assert server.process is not None
    os.kill(server.process.pid, sig)


def test_a_frozen_redis_degrades_fast_and_recovers_after_sigcont(
    redis_server: RedisServer, paced_server: EmulatorServer, clock: FakeClock
) -> None:
    events: list[object] = []
    url = f"{redis_server.url}?retry_after=5"
    limiter = QuotaLimiter(store=url, clock=clock, tier="tier1", on_event=events.append)
    guard = Guard(
        client=emulator_client(paced_server, "k-frozen"),
        clock=clock,
        quota=limiter,
        store=url,  # the breakers share the frozen Redis too
        log=False,
    )
    store = limiter.store
    assert isinstance(store, RedisStore)
    guard.models.generate_content(model=FLASH, contents="warm up")  # connections open
    assert not store.degraded

    _pause(redis_server, signal.SIGSTOP)
    try:
        latencies = []
        for n in range(12):
            started = time.monotonic()
            assert guard.models.generate_content(model=FLASH, contents=f"frozen {n}").text
            latencies.append(time.monotonic() - started)
        assert store.degraded
        assert any(isinstance(e, StoreDegraded) for e in events)
        # The first call pays the timeouts (each store: one try and one retry), the
        # others none: like a dead Redis. The old 2 s timeout made it 4 s and more.
        assert latencies[0] < 0.25 + 8 * SOCKET_TIMEOUT, latencies
        assert max(latencies[1:]) < 0.25, latencies
    finally:
        _pause(redis_server, signal.SIGCONT)

    clock.advance(6.0)  # past retry_after: Redis is asked again
    assert guard.models.generate_content(model=FLASH, contents="thawed").text
    assert not store.degraded
    assert any(isinstance(e, StoreRecovered) for e in events)
    guard.close()
    limiter.close()
