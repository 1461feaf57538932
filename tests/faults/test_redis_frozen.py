"""A frozen Redis (SIGSTOP) costs a call no more than a dead one: a short per-operation
timeout, then the local fallback until `retry_after`; after SIGCONT the stores
reconnect and share state again. The response cache on Redis likewise: one failure,
then no Redis for `retry_after`, its lookups quiet misses. A real redis-server, the
real SDK, the emulator."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator

import pytest
from google.genai import types

from gemini_guard import last_call
from gemini_guard.cache.stores.redis import RedisCacheStore
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard
from gemini_guard.quota import QuotaLimiter
from gemini_guard.quota.events import StoreDegraded, StoreRecovered
from gemini_guard.quota.stores.redis import RedisStore
from gemini_guard.stores.url import SOCKET_TIMEOUT
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


# -- the response cache on a frozen or dead Redis ----------------------------------------


def _connections(server: RedisServer) -> int:
    """How many connections `server` has accepted so far, counting this one. Asked on
    a new connection, so every connection queued before it has been accepted."""
    import redis

    with redis.Redis.from_url(server.url) as probe:
        return int(probe.info("stats")["total_connections_received"])


def _cache_guard(
    redis_server: RedisServer, paced_server: EmulatorServer, clock: FakeClock, key: str
) -> tuple[Guard, RedisCacheStore]:
    guard = Guard(
        client=emulator_client(paced_server, key),
        clock=clock,
        cache=f"{redis_server.url}?retry_after=5",
        log=False,
    )
    assert guard.cache is not None
    store = guard.cache.store
    assert isinstance(store, RedisCacheStore)
    return guard, store


def _served_from_cache(guard: Guard, contents: str) -> bool:
    """Ask `contents` (cacheable: temperature 0); True when the cache answered it."""
    config = types.GenerateContentConfig(temperature=0)
    assert guard.models.generate_content(model=FLASH, contents=contents, config=config).text
    info = last_call()
    assert info is not None
    return info.call_id == "cache"


def _cache_warnings(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.name == "gemini_guard.cache" and r.levelno >= logging.WARNING
    ]


def test_a_frozen_redis_costs_the_cache_one_timeout_not_one_per_call(
    redis_server: RedisServer,
    paced_server: EmulatorServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard, store = _cache_guard(redis_server, paced_server, clock, "k-cache-frozen")
    assert not _served_from_cache(guard, "kept before the freeze")
    assert _served_from_cache(guard, "kept before the freeze")
    assert guard.cache is not None
    errors_before = guard.cache.stats().store_errors
    started_at = clock.monotonic()
    before = _connections(redis_server)

    caplog.set_level(logging.INFO, logger="gemini_guard.cache")
    _pause(redis_server, signal.SIGSTOP)
    try:
        # The stored answer is not reachable either: every call is a quiet miss.
        served = [_served_from_cache(guard, "kept before the freeze") for _ in range(5)]
        served += [_served_from_cache(guard, f"frozen {n}") for n in range(5)]
    finally:
        _pause(redis_server, signal.SIGCONT)
    # Each Redis attempt after a timeout opens a new connection (one retry on a fresh
    # one), which the frozen server's kernel queues and Redis accepts once resumed.
    # One lookup timed out (its first try on the pooled connection, its retry on a new
    # one), then the store was left alone: one new connection. Asking on every lookup,
    # credential record and store, as before, opened two per operation: 59 here.
    opened = _connections(redis_server) - before - 1
    assert served == [False] * 10
    assert opened == 1, opened
    assert guard.cache.stats().store_errors - errors_before == 1
    assert store.degraded
    (warning,) = _cache_warnings(caplog.records)
    assert "does not answer" in warning
    assert "not asked again for 5 s" in warning
    assert clock.monotonic() - started_at < 5  # the calls did not move the skip window

    caplog.clear()
    # Within retry_after Redis is still left alone, thawed or not.
    assert not _served_from_cache(guard, "kept before the freeze")
    clock.advance(5.0)
    assert _served_from_cache(guard, "kept before the freeze")  # asked again: a hit
    assert not store.degraded
    assert not _served_from_cache(guard, "after the thaw")
    assert _served_from_cache(guard, "after the thaw")  # stored again too
    (back,) = _cache_warnings(caplog.records)
    assert "answers again" in back
    guard.close()


def test_a_killed_redis_costs_the_cache_one_failure_and_it_comes_back(
    redis_server: RedisServer,
    paced_server: EmulatorServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard, store = _cache_guard(redis_server, paced_server, clock, "k-cache-killed")
    assert not _served_from_cache(guard, "kept before the kill")
    assert guard.cache is not None
    errors_before = guard.cache.stats().store_errors

    caplog.set_level(logging.INFO, logger="gemini_guard.cache")
    redis_server.stop()
    served = [_served_from_cache(guard, "kept before the kill") for _ in range(10)]
    assert served == [False] * 10
    assert guard.cache.stats().store_errors - errors_before == 1
    assert store.degraded
    (warning,) = _cache_warnings(caplog.records)
    assert "does not answer" in warning

    caplog.clear()
    redis_server.start()  # the same port, empty
    assert not _served_from_cache(guard, "after the restart")  # still left alone
    clock.advance(5.0)
    assert not _served_from_cache(guard, "after the restart")  # asked: a miss, stored
    assert _served_from_cache(guard, "after the restart")
    assert not store.degraded
    (back,) = _cache_warnings(caplog.records)
    assert "answers again" in back
    guard.close()
