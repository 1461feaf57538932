"""The breaker store contract: memory, SQLite and Redis keep breakers the same way.

Several handles on one store stand for several processes (SQLite and Redis handles
share nothing but the store); one test runs real processes. Time is a FakeClock or
plain wall-clock numbers handed to the pure breaker functions: nothing sleeps.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis
from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.policies import (
    Breaker,
    BreakerPolicy,
    BreakerSnapshot,
    BreakerStore,
    MemoryBreakerStore,
    RedisBreakerStore,
    SQLiteBreakerStore,
    open_breaker_store,
)
from tests.support.redis_server import RedisServer

STORES = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]

OverloadedError = Diagnosis(
    http_status=503,
    grpc_status="UNAVAILABLE",
    reason=None,
    message="The model is overloaded.",
    category=Category.OVERLOADED,
    retryable=True,
)

Opener = Callable[[], BreakerStore]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?on_outage=fail"


@pytest.fixture
def open_store(store_url: str) -> Iterator[Opener]:
    """Opens handles on the one store under test (memory: one shared instance)."""
    opened: list[BreakerStore] = []
    shared = open_breaker_store(store_url) if store_url == "memory://" else None

    def opener() -> BreakerStore:
        if shared is not None:
            return shared
        store = open_breaker_store(store_url, clock=FakeClock())
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()  # type: ignore[attr-defined]


def test_an_unknown_breaker_is_none_and_an_update_is_read_back_by_another_handle(
    open_store: Opener,
) -> None:
    a, b = open_store(), open_store()
    assert a.load("p/gemini-2.5-flash") is None
    snap = BreakerSnapshot(
        state="open",
        consecutive_failures=5,
        open_until=1_000_030.5,
        opens=1,
        outcomes=((1_000_000.0, True), (1_000_000.25, False)),
        failures=(1_000_000.0,),
        probes=(),
    )
    seen: list[BreakerSnapshot | None] = []

    def change(old: BreakerSnapshot | None) -> BreakerSnapshot:
        seen.append(old)
        return snap

    assert a.update("p/gemini-2.5-flash", change) == snap
    assert seen[-1] is None
    assert b.load("p/gemini-2.5-flash") == snap
    assert b.load("p/gemini-2.5-pro") is None  # keys are separate


def test_concurrent_updates_from_many_handles_lose_nothing(open_store: Opener) -> None:
    # 4 threads, each with its own handle (its own connection), add 25 failures each
    # through read-modify-write updates: atomic updates leave exactly 100.
    handles = [open_store() for _ in range(4)]

    def bump(old: BreakerSnapshot | None) -> BreakerSnapshot:
        old = old or BreakerSnapshot()
        return BreakerSnapshot(consecutive_failures=old.consecutive_failures + 1)

    def worker(store: BreakerStore) -> None:
        for _ in range(25):
            store.update("p/m", bump)

    threads = [threading.Thread(target=worker, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = open_store().load("p/m")
    assert final is not None
    assert final.consecutive_failures == 100


def test_a_breaker_opened_through_one_handle_is_open_for_another(open_store: Opener) -> None:
    policy = BreakerPolicy(failure_threshold=3, cooldown=30)
    here = Breaker("p/gemini-2.5-pro", policy=policy, store=open_store())
    there = Breaker("p/gemini-2.5-pro", policy=policy, store=open_store())
    now = 1_700_000_000.0
    moves = [here.record(now + i, OverloadedError) for i in range(3)]
    assert moves[-1] is not None
    assert (moves[-1].old, moves[-1].new) == ("closed", "open")
    admission, _ = there.admit(now + 10)
    assert not admission.allowed
    assert admission.retry_at == pytest.approx(now + 2 + 30)


def test_the_failure_ratio_counts_outcomes_from_every_handle(open_store: Opener) -> None:
    # Three "processes" each see a few failures and successes of the same model: no
    # run of 8 anywhere, but 80% of 20 calls within a minute failed, together.
    policy = BreakerPolicy()  # the defaults: 80% of at least 20 calls in 60 s
    handles = [Breaker("p/gemini-2.5-pro", policy=policy, store=open_store()) for _ in range(3)]
    now = 1_700_000_000.0
    moves = []
    for i in range(20):
        failed = i % 5 != 0  # 1 success, 4 failures, over and over
        moves.append(handles[i % 3].record(now + i, OverloadedError if failed else None))
    opened = [m for m in moves if m is not None]
    assert [(m.old, m.new) for m in opened] == [("closed", "open")]
    assert "80% of 20 calls" in opened[0].reason
    assert moves[-1] is opened[0]  # on the 20th call, not before


def test_a_young_outage_is_probed_every_cooldown_across_handles(open_store: Opener) -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=5, storm_after=120)
    here = Breaker("p/m", policy=policy, store=open_store())
    there = Breaker("p/m", policy=policy, store=open_store())
    now = 1_700_000_000.0
    here.record(now, OverloadedError)
    for k in range(1, 4):  # probes taken by the other handle keep failing
        probe, _ = there.admit(now + 5 * k)
        assert probe.probe
        move = there.record(now + 5 * k, OverloadedError, probe=True)
        assert move is not None
        assert move.open_until == now + 5 * k + 5  # still young: 5 s, no doubling
    snap = here.store.load("p/m")
    assert snap is not None
    assert snap.down_since == now  # when the outage began, kept by every store


def test_only_one_half_open_probe_across_handles(open_store: Opener) -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=30, half_open_probes=1)
    handles = [Breaker("p/m", policy=policy, store=open_store()) for _ in range(3)]
    now = 1_700_000_000.0
    handles[0].record(now, OverloadedError)
    later = now + 31
    admitted = [b.admit(later)[0] for b in handles]
    assert [a.allowed for a in admitted] == [True, False, False]
    assert admitted[0].probe
    # the probe succeeds: closed again for everyone
    move = handles[0].record(later + 1, None, probe=True)
    assert move is not None
    assert move.new == "closed"
    assert handles[2].state(later + 2) == "closed"


def _open_from_another_process(url: str, key: str, now: float) -> None:
    policy = BreakerPolicy(failure_threshold=2, cooldown=60)
    store = open_breaker_store(url)
    breaker = Breaker(key, policy=policy, store=store)
    breaker.record(now, OverloadedError)
    breaker.record(now + 1, OverloadedError)
    store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_processes_agree_on_a_breaker(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = f"{request.getfixturevalue('redis_server').url}?on_outage=fail"
    now = 1_700_000_000.0
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_open_from_another_process, args=(url, "proj/pro", now))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    store = open_breaker_store(url)
    try:
        breaker = Breaker("proj/pro", policy=BreakerPolicy(), store=store)
        assert breaker.state(now + 5) == "open"
        assert breaker.state(now + 1 + 61) == "half_open"
    finally:
        store.close()  # type: ignore[attr-defined]


@pytest.mark.redis
def test_a_dead_redis_degrades_to_local_breakers_and_recovers(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisBreakerStore.from_url(f"{redis_server.url}?retry_after=5", clock=clock)
    try:
        store.update("p/m", lambda old: BreakerSnapshot(consecutive_failures=1))
        redis_server.stop()
        # Redis is down: the call path keeps working on a local store
        local = store.update("p/m", lambda old: BreakerSnapshot(consecutive_failures=7))
        assert local.consecutive_failures == 7
        assert store.degraded
        assert store.load("p/m") == local
        redis_server.start()
        clock.advance(4.0)
        assert store.load("p/m") == local  # not retried before retry_after
        clock.advance(1.0)
        # Redis again (restarted empty: the test server keeps nothing on disk):
        # reads and writes go there, not to the local stand-in, and others see them.
        assert store.load("p/m") is None
        assert not store.degraded
        store.update("p/m", lambda old: BreakerSnapshot(consecutive_failures=3))
        other = RedisBreakerStore.from_url(redis_server.url)
        try:
            shared = other.load("p/m")
            assert shared is not None
            assert shared.consecutive_failures == 3
        finally:
            other.close()
    finally:
        store.close()


@pytest.mark.redis
def test_a_dead_redis_with_on_outage_fail_raises_store_error(
    redis_server: RedisServer,
) -> None:
    store = open_breaker_store(f"{redis_server.url}?on_outage=fail")
    try:
        redis_server.stop()
        with pytest.raises(StoreError, match="Redis breaker store"):
            store.load("p/m")
    finally:
        store.close()  # type: ignore[attr-defined]


def test_urls_choose_the_backend_and_bad_ones_say_what_is_allowed(tmp_path: Path) -> None:
    assert isinstance(open_breaker_store("memory://"), MemoryBreakerStore)
    sqlite = open_breaker_store(f"sqlite:///{tmp_path / 'a' / 'b.db'}")
    assert isinstance(sqlite, SQLiteBreakerStore)
    assert sqlite.path == tmp_path / "a" / "b.db"
    sqlite.close()
    assert isinstance(open_breaker_store("redis://127.0.0.1:1/0"), RedisBreakerStore)
    for url, message in [
        ("state.db", "not a store URL"),
        ("mysql://x/y", "unknown scheme 'mysql'"),
        ("memory://here", "takes no path"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///x.db?mode=ro", "takes no options"),
        ("redis://127.0.0.1:1/0?on_outage=maybe", "use 'degrade' or 'fail'"),
        ("redis://127.0.0.1:1/0?retry_after=soon", "number of seconds"),
    ]:
        with pytest.raises(ConfigError, match=message):
            open_breaker_store(url)


def test_corrupt_sqlite_state_is_a_store_error(tmp_path: Path) -> None:
    store = SQLiteBreakerStore(tmp_path / "s.db")
    try:
        store.update("p/m", lambda old: BreakerSnapshot())
        outside = sqlite3.connect(tmp_path / "s.db")  # another writer damages the row
        with outside:
            outside.execute("UPDATE breaker_snapshots SET snapshot = 'not json'")
        outside.close()
        with pytest.raises(StoreError, match="unreadable breaker state"):
            store.load("p/m")
    finally:
        store.close()


def _commands(server: RedisServer) -> dict[str, int]:
    """Redis's own count of the commands it has run, by name."""
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def _ran(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    ran = {name: after[name] - before.get(name, 0) for name in after}
    # Leaving out the counting itself and new connections' handshakes.
    return {name: n for name, n in ran.items() if n and name not in ("info", "hello")}


@pytest.mark.redis
async def test_a_redis_breaker_call_costs_one_read_and_one_swap(
    redis_server: RedisServer,
) -> None:
    # A call admits (a read), then records its end (a swap expecting what was read):
    # two round trips, sync or async, where a read and a WATCH transaction took four.
    store = RedisBreakerStore.from_url(f"{redis_server.url}?on_outage=fail", clock=FakeClock())
    breaker = Breaker("p/gemini-2.5-flash", policy=BreakerPolicy(), store=store)
    now = 1_700_000_000.0
    try:
        breaker.record(now, None)  # the script is loaded once
        before = _commands(redis_server)
        assert breaker.admit(now + 1)[0].allowed
        breaker.record(now + 1, None)
        between = _commands(redis_server)
        assert (await breaker.aadmit(now + 2))[0].allowed
        await breaker.arecord(now + 2, None)
        after = _commands(redis_server)
        snapshot = store.load("p/gemini-2.5-flash")
    finally:
        await store.aclose()
    # Sent: the admission's GET and one EVALSHA (Redis counts the GET and SET its
    # script runs too); no WATCH, MULTI or EXEC.
    assert _ran(before, between) == {"get": 2, "set": 1, "evalsha": 1}
    assert _ran(between, after) == {"get": 2, "set": 1, "evalsha": 1}
    assert snapshot is not None
    assert [t for t, _failed in snapshot.outcomes] == [now, now + 1, now + 2]


@pytest.mark.redis
def test_a_redis_that_forgot_the_swap_script_still_records(redis_server: RedisServer) -> None:
    import redis

    store = RedisBreakerStore.from_url(f"{redis_server.url}?on_outage=fail", clock=FakeClock())
    breaker = Breaker("p/gemini-2.5-pro", policy=BreakerPolicy(), store=store)
    now = 1_700_000_000.0
    admin = redis.Redis.from_url(redis_server.url)
    try:
        breaker.record(now, OverloadedError)
        admin.script_flush()  # as a restarted Redis would have
        breaker.record(now + 1, OverloadedError)
        snapshot = store.load("p/gemini-2.5-pro")
    finally:
        admin.close()
        store.close()
    assert snapshot is not None
    assert snapshot.failures == (now, now + 1)


@pytest.mark.redis
async def test_a_process_s_calls_in_flight_together_swap_one_at_a_time(
    redis_server: RedisServer,
) -> None:
    # 50 records at once on one handle: every one kept, each swapped at its first try
    # (calls racing each other in one process would fail their swaps and go round).
    store = RedisBreakerStore.from_url(f"{redis_server.url}?on_outage=fail", clock=FakeClock())
    breaker = Breaker("p/gemini-2.5-flash-lite", policy=BreakerPolicy(), store=store)
    now = 1_700_000_000.0
    try:
        await breaker.arecord(now, None)
        before = _commands(redis_server)
        await asyncio.gather(*(breaker.arecord(now + 1 + i / 100, None) for i in range(50)))
        after = _commands(redis_server)
        snapshot = await store.aload("p/gemini-2.5-flash-lite")
    finally:
        await store.aclose()
    assert _ran(before, after)["evalsha"] == 50
    assert snapshot is not None
    assert len(snapshot.outcomes) == 51
