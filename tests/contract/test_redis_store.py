"""What only the Redis store does: one script per acquire, hash tags, TTLs, outages."""

from __future__ import annotations

import pytest
import redis

from gemini_guard.clock import FakeClock
from gemini_guard.errors import DailyQuotaExhausted, StoreError
from gemini_guard.pacific import next_reset
from gemini_guard.quota import QuotaKey, QuotaLimiter, StoreDegraded, StoreRecovered, open_store
from gemini_guard.quota.ledger import MAX_FLIGHT, Budget, Granted, Refused, day_index
from gemini_guard.quota.stores.base import Reservation
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
        assert names == ["gg:{p1:gemini-2.5-flash}:meta", "gg:{p1:gemini-2.5-flash}:slots"]
        # Gone once the day's counts are over (the day outlasts the window here) and a
        # minute of slack; never before: the day's counts live in meta.
        day_left_ms = (next_reset(clock.time()) - clock.time()) * 1000
        meta_ttl = client.pttl("gg:{p1:gemini-2.5-flash}:meta")
        slots_ttl = client.pttl("gg:{p1:gemini-2.5-flash}:slots")
        assert day_left_ms < meta_ttl <= day_left_ms + 62_000
        assert meta_ttl < slots_ttl <= meta_ttl + 1_000  # slots outlive meta, not the reverse
    finally:
        client.close()
        gate.close()


def test_the_usual_reserve_runs_four_commands_inside_redis(redis_server: RedisServer) -> None:
    """The cost the goal is about: read meta, the request limit's edge, two writes."""
    clock = FakeClock()
    gate = QuotaLimiter(
        store=redis_server.url,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": 5, "tpm": 10_000, "rpd": 1000}},
        latency_allowance=0.0,
    )
    client = redis.Redis.from_url(redis_server.url)
    try:
        t0 = clock.time()
        for at in (0.0, 1.0, 2.0, 3.0, 31.0):  # a full window (31: trimmed, not due again)
            clock.set_time(t0 + at)
            gate.settle(gate.reserve(project="p", model=MODEL, tokens=10), sent=True)
        clock.set_time(t0 + 60.0)  # the oldest leaves the window now
        before = client.info("commandstats")
        permit = gate.reserve(project="p", model=MODEL, tokens=10)
        after = client.info("commandstats")
        inside = {
            name.removeprefix("cmdstat_"): after[name]["calls"]
            - before.get(name, {"calls": 0})["calls"]
            for name in after
            if name not in ("cmdstat_info", "cmdstat_evalsha")
        }
        assert {name: calls for name, calls in inside.items() if calls} == {
            "hmget": 1,
            "zrange": 1,
            "zadd": 1,
            "hset": 1,
        }
        assert permit.wait == 0.0
        assert gate.reserve(project="p", model=MODEL, tokens=10).wait == pytest.approx(1.0)
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
        # (Redis 7 counts SCRIPT LOAD as "script|load", earlier ones as "script")
        loads = calls.get("cmdstat_script", 0) + calls.get("cmdstat_script|load", 0)
        assert loads == calls.get("cmdstat_eval", 0) == 0
        client.script_flush()
        permit = gate.reserve(project="p", model=MODEL, tokens=1)  # NOSCRIPT, reloaded
        assert permit.wait == pytest.approx(60.0)
        client.script_flush()
        assert gate.confirm(permit) == pytest.approx(60.0)  # each script reloads itself
        client.script_flush()
        gate.settle(permit, sent=False)
        assert gate.usage("p", MODEL).requests == 2
        client.script_flush()
        gate.store.mark_day_spent(QuotaKey("p", MODEL), day=permit.ticket.day)  # type: ignore[attr-defined]
        with pytest.raises(DailyQuotaExhausted):
            gate.reserve(project="p", model=MODEL, tokens=1)
    finally:
        client.close()
        gate.close()


async def test_async_calls_share_the_ledger_and_reload_scripts(redis_server: RedisServer) -> None:
    clock = FakeClock()
    gate = _gate(redis_server.url, clock)
    client = redis.Redis.from_url(redis_server.url)
    try:
        first = await gate.areserve(project="p", model=MODEL, tokens=1)
        client.script_flush()
        second = await gate.areserve(project="p", model=MODEL, tokens=1)
        assert (first.wait, second.wait) == (0.0, 0.0)
        assert await gate.aconfirm(second) == 0.0
        await gate.asettle(first, sent=True)
        client.script_flush()
        await gate.store.amark_day_spent(QuotaKey("p", MODEL), day=first.ticket.day)  # type: ignore[attr-defined]
        with pytest.raises(DailyQuotaExhausted):
            gate.reserve(project="p", model=MODEL, tokens=1)  # the sync client sees it too
    finally:
        client.close()
        await gate.aclose()


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
    """A window emptied by a release keeps its TTL (the key never empties)."""
    clock = FakeClock()
    gate = _gate(redis_server.url, clock)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        gate.settle(gate.reserve(project="p1", model=MODEL, tokens=3), sent=False)
        clock.advance(1.0)
        gate.reserve(project="p1", model=MODEL, tokens=3)  # unanswered: held up to MAX_FLIGHT
        for suffix in ("slots", "meta"):
            assert client.pttl(f"gg:{{p1:gemini-2.5-flash}}:{suffix}") >= MAX_FLIGHT * 1000
    finally:
        client.close()
        gate.close()


def test_a_ledger_whose_meta_expired_starts_afresh(redis_server: RedisServer) -> None:
    """What is left of a window without its meta key is dropped, not counted twice."""
    clock = FakeClock()
    gate = _gate(redis_server.url, clock)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        for _ in range(2):
            gate.settle(gate.reserve(project="p1", model=MODEL, tokens=3), sent=True)
        client.delete("gg:{p1:gemini-2.5-flash}:meta")  # as if it expired first
        assert gate.reserve(project="p1", model=MODEL, tokens=3).wait == 0.0
        assert gate.usage("p1", MODEL).requests == 1
        assert client.pttl("gg:{p1:gemini-2.5-flash}:meta") > 0
    finally:
        client.close()
        gate.close()


def test_a_day_marked_spent_on_a_new_ledger_expires(redis_server: RedisServer) -> None:
    clock = FakeClock()
    store = RedisStore(redis_server.url)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        key = QuotaKey("p1", MODEL)
        day = day_index(clock.time())[0]
        store.mark_day_spent(key, day=day)
        assert 0 < client.pttl("gg:{p1:gemini-2.5-flash}:meta") <= 3 * 86_400_000
        assert store.ledgers() == [key]
        refused = store.acquire(
            key,
            slot_id="a",
            budget=Budget(requests=2),
            tokens=1,
            now=clock.time(),
            allowance=0.0,
            deadline=None,
        )
        assert isinstance(refused, Refused)
        assert refused.why == "day"
    finally:
        client.close()
        store.close()


def _tally(gate: QuotaLimiter, clock: FakeClock, project: str) -> None:
    clock.advance(0.01)
    gate.tally(project=project, model=MODEL, tokens=5)


def test_a_batch_of_tallies_is_one_evalsha(redis_server: RedisServer) -> None:
    """32 attempts sent without a permit: written by one script call, one round trip."""
    clock = FakeClock()
    gate = QuotaLimiter(store=redis_server.url, clock=clock, tier="auto", adaptive=False)
    client = redis.Redis.from_url(redis_server.url)
    try:
        for _ in range(32):
            _tally(gate, clock, "p")  # the first batch loads the script
        for _ in range(31):
            _tally(gate, clock, "p")  # queued, not written yet
        before = client.info("commandstats")
        _tally(gate, clock, "p")  # the 32nd: the batch is written
        after = client.info("commandstats")
        calls = {
            name.removeprefix("cmdstat_"): after[name]["calls"]
            - before.get(name, {"calls": 0})["calls"]
            for name in after
            if name != "cmdstat_info"
        }
        # (commandstats also counts the commands the script runs inside Redis)
        assert calls["evalsha"] == 1
        assert calls["zadd"] == 32
        assert calls.get("script|load", 0) == calls.get("script", 0) == 0
        assert gate.usage("p", MODEL).requests == 64
    finally:
        client.close()
        gate.close()


def test_a_batch_of_two_ledgers_is_one_pipeline_and_reloads_its_script(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    gate = QuotaLimiter(store=redis_server.url, clock=clock, tier="auto", adaptive=False)
    client = redis.Redis.from_url(redis_server.url)
    try:
        for index in range(31):
            _tally(gate, clock, f"p{index % 2}")
        client.script_flush()  # NOSCRIPT: loaded and the whole pipeline sent again
        before = client.info("commandstats")
        _tally(gate, clock, "p1")
        after = client.info("commandstats")
        # (Redis 7 counts SCRIPT LOAD as "script|load", earlier ones as "script")
        loads = sum(
            after.get(name, {"calls": 0})["calls"] - before.get(name, {"calls": 0})["calls"]
            for name in ("cmdstat_script", "cmdstat_script|load")
        )
        assert loads == 1
        assert [gate.usage(p, MODEL).requests for p in ("p0", "p1")] == [16, 16]
        # Each ledger's script once more, in one pipeline: one round trip.
        for index in range(32):
            _tally(gate, clock, f"p{index % 2}")
        assert [gate.usage(p, MODEL).requests for p in ("p0", "p1")] == [32, 32]
    finally:
        client.close()
        gate.close()


def test_a_tally_batch_while_redis_is_down_goes_to_the_local_ledger(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    events: list[object] = []
    store = RedisStore(redis_server.url, retry_after=5.0, on_event=events.append)
    try:
        key, other = QuotaKey("p", MODEL), QuotaKey("q", MODEL)
        now = clock.time()
        redis_server.stop()
        slots = [
            Reservation(k, f"s{index}", now + index, now + index, 5, 0)
            for index, k in enumerate((key, other, key))
        ]
        store.record_answered(slots)  # two ledgers: the pipeline fails
        assert [type(event) for event in events] == [StoreDegraded]
        result = store.acquire(
            key,
            slot_id="next",
            budget=Budget(requests=2),
            tokens=1,
            now=now + 3.0,
            allowance=0.0,
            deadline=None,
        )
        # The local ledger holds the batch: key's two slots fill its window.
        assert isinstance(result, Granted)
        assert (result.start, result.origin) == (now + 60.0, "fallback")
        # Still degraded: a single-ledger batch goes to the local ledger untried.
        store.record_answered([Reservation(other, "s3", now + 4.0, now + 4.0, 5, 0)])
        result = store.acquire(
            other,
            slot_id="next",
            budget=Budget(requests=2),
            tokens=1,
            now=now + 4.0,
            allowance=0.0,
            deadline=None,
        )
        assert isinstance(result, Granted)
        assert (result.start, result.origin) == (now + 61.0, "fallback")
    finally:
        store.close()
    failing = RedisStore(redis_server.url, on_outage="fail")
    try:
        with pytest.raises(StoreError, match="unreachable"):
            failing.record_answered(slots)
    finally:
        failing.close()
