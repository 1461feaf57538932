"""What only the Redis store does: one script per acquire, hash tags, TTLs, outages."""

from __future__ import annotations

import pytest
import redis

from gemini_guard.clock import FakeClock
from gemini_guard.errors import StoreError
from gemini_guard.quota import QuotaLimiter, StoreDegraded, StoreRecovered, open_store
from gemini_guard.quota.ledger import MAX_FLIGHT
from gemini_guard.quota.stores.redis import RedisStore
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

MODEL = "gemini-2.5-flash"


def _gate(url: str, clock: FakeClock, events: list[object] | None = None) -> QuotaLimiter:
    return QuotaLimiter(
        store=url,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": 2}},
        latency_allowance=0.0,
        on_event=None if events is None else events.append,
    )


def test_keys_are_hash_tagged_and_expire(redis_server: RedisServer) -> None:
    clock = FakeClock()
    gate = _gate(redis_server.url, clock)
    gate.settle(gate.reserve(project="p1", model=MODEL, tokens=3), sent=True)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        names = sorted(client.keys("*"))
        assert names == [
            "gg:{p1:gemini-2.5-flash}:days",
            "gg:{p1:gemini-2.5-flash}:meta",
            "gg:{p1:gemini-2.5-flash}:slots",
        ]
        ttl_ms = client.pttl("gg:{p1:gemini-2.5-flash}:slots")
        # Gone once its one slot has left the window (held at most MAX_FLIGHT unanswered).
        assert 0 < ttl_ms <= (60 + MAX_FLIGHT + 1) * 1000
        assert 0 < client.pttl("gg:{p1:gemini-2.5-flash}:days") <= 2 * 86_400_000 + 60_000
    finally:
        client.close()
        gate.close()


def test_acquire_is_one_evalsha_and_survives_script_flush(redis_server: RedisServer) -> None:
    clock = FakeClock()
    gate = _gate(redis_server.url, clock)
    client = redis.Redis.from_url(redis_server.url)
    try:
        gate.reserve(project="p", model=MODEL, tokens=1)  # loads the script once
        before = client.info("commandstats")
        gate.reserve(project="p", model=MODEL, tokens=1)
        after = client.info("commandstats")
        calls = {
            name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"]
            for name in after
            if name != "cmdstat_info"
        }
        # (commandstats also counts the commands the script runs inside Redis)
        assert calls["cmdstat_evalsha"] == 1
        assert calls.get("cmdstat_script", 0) == calls.get("cmdstat_eval", 0) == 0
        client.script_flush()
        permit = gate.reserve(project="p", model=MODEL, tokens=1)  # NOSCRIPT, reloaded
        assert permit.wait == pytest.approx(60.0)
    finally:
        client.close()
        gate.close()


def test_dead_redis_degrades_to_local_pacing_and_recovers(redis_server: RedisServer) -> None:
    clock = FakeClock()
    events: list[object] = []
    gate = _gate(f"{redis_server.url}?retry_after=5", clock, events)
    try:
        first = gate.reserve(project="p", model=MODEL, tokens=1)
        redis_server.stop()
        local = [gate.reserve(project="p", model=MODEL, tokens=1) for _ in range(3)]
        assert [type(e) for e in events] == [StoreDegraded]
        assert "Connection refused" in events[0].error  # type: ignore[attr-defined]
        # Paced locally (the local ledger starts empty): 2 per minute still holds.
        assert [p.wait for p in local] == [0.0, 0.0, pytest.approx(60.0)]
        gate.settle(local[0], sent=True)
        redis_server.start()
        clock.advance(1.0)  # before retry_after: still local, no reconnect attempt
        gate.reserve(project="p", model=MODEL, tokens=1)
        assert [type(e) for e in events] == [StoreDegraded]
        clock.advance(5.0)
        gate.settle(first, sent=True)  # Redis answers again
        assert [type(e) for e in events] == [StoreDegraded, StoreRecovered]
        assert gate.reserve(project="p", model=MODEL, tokens=1).ticket.origin == (  # type: ignore[attr-defined]
            "primary"
        )
    finally:
        gate.close()


def test_dead_redis_fails_closed_when_asked(redis_server: RedisServer) -> None:
    clock = FakeClock()
    gate = _gate(f"{redis_server.url}?on_outage=fail", clock)
    redis_server.stop()
    with pytest.raises(StoreError, match="unreachable") as caught:
        gate.reserve(project="p", model=MODEL, tokens=1)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    gate.close()


def test_url_credentials_never_show(redis_server: RedisServer) -> None:
    store = open_store(f"redis://user:s3cret@127.0.0.1:{redis_server.port}/0")
    assert isinstance(store, RedisStore)
    assert "s3cret" not in store.url
    assert "s3cret" not in repr(store)
    store.close()


def test_window_keys_outlive_an_unanswered_slot(redis_server: RedisServer) -> None:
    """TTLs are refreshed sparingly; a key recreated by settle must not keep a short one."""
    clock = FakeClock()
    gate = _gate(redis_server.url, clock)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        gate.settle(gate.reserve(project="p1", model=MODEL, tokens=3), sent=True)
        assert client.pttl("gg:{p1:gemini-2.5-flash}:slots") <= 61_000  # recreated by settle
        clock.advance(1.0)
        gate.reserve(project="p1", model=MODEL, tokens=3)  # unanswered: held up to MAX_FLIGHT
        for suffix in ("slots", "meta", "flight"):
            assert client.pttl(f"gg:{{p1:gemini-2.5-flash}}:{suffix}") >= MAX_FLIGHT * 1000
    finally:
        client.close()
        gate.close()
