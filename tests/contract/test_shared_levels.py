"""Learned limits are the project's: every store shares them between processes.

Each "process" is a handle of its own on one store (a SQLite connection, a Redis
client; memory: limiters given one `MemoryStore`), on one FakeClock.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from gemini_guard.call import Permit
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation
from gemini_guard.quota import (
    AdaptiveLimits,
    AdaptivePolicy,
    LimitLearned,
    LimitRecovered,
    QuotaKey,
    QuotaLimiter,
    QuotaStore,
)
from gemini_guard.quota.shared_levels import TTL, Level, LevelStore, open_level_store
from tests.contract.conftest import StoreFactory
from tests.support.redis_server import RedisServer

MODEL = "gemini-2.5-flash"
PROJECT = "proj-a"
KEY = QuotaKey(PROJECT, MODEL)


def levels_of(store: QuotaStore) -> LevelStore:
    levels = open_level_store(store)
    assert levels is not None
    return levels


def adaptive(store: QuotaStore, events: list[object] | None = None) -> AdaptiveLimits:
    return AdaptiveLimits(
        on_event=None if events is None else events.append, shared=levels_of(store)
    )


def gate_on(store: QuotaStore | str, clock: FakeClock, **options: Any) -> QuotaLimiter:
    options.setdefault("latency_allowance", 0.0)
    options.setdefault("tier", "free")  # gemini-2.5-flash: 10 RPM
    return QuotaLimiter(store=store, clock=clock, **options)


def reserve(gate: QuotaLimiter) -> Permit:
    return gate.reserve(project=PROJECT, model=MODEL, tokens=0)


def rate_limited(*, limit: int | None = None) -> Diagnosis:
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
            tier="free",
            limit=limit,
            model=MODEL,
            quota_id="GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            metric="generativelanguage.googleapis.com/generate_content_free_tier_requests",
        ),
    )


def learned(events: list[object]) -> list[LimitLearned]:
    return [e for e in events if isinstance(e, LimitLearned)]


def recovered(events: list[object]) -> list[LimitRecovered]:
    return [e for e in events if isinstance(e, LimitRecovered)]


# -- the level store ------------------------------------------------------------------


def bump(old: Level | None) -> Level:
    if old is None:
        return Level(effective=1, stated=None, last_change=0.0, last_cut=0.0)
    return Level(old.effective + 1, old.stated, old.last_change, old.last_cut)


def test_updates_from_many_handles_at_once_are_never_lost(make_store: StoreFactory) -> None:
    threads, each = 4, 25
    handles = [levels_of(make_store()) for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(levels: LevelStore) -> None:
        barrier.wait()
        for _ in range(each):
            levels.update(KEY, "rpm", bump, at=1.0)

    workers = [threading.Thread(target=work, args=(h,)) for h in handles]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    level = handles[0].load([KEY], at=2.0)[(KEY, "rpm")]
    assert level.effective == threads * each
    for levels in handles:
        levels.close()


def test_a_level_expires_a_ttl_after_its_last_write(make_store: StoreFactory) -> None:
    levels = levels_of(make_store())
    level = Level(effective=7, stated=None, last_change=0.0, last_cut=0.0)
    levels.update(KEY, "rpm", lambda old: level, at=0.0)
    # The same level again is no change: nothing is written, the expiry stays.
    assert levels.update(KEY, "rpm", lambda old: old, at=TTL / 2) == level
    assert levels.load([KEY], at=TTL - 1) == {(KEY, "rpm"): level}
    assert levels.load([KEY], at=TTL + 1) == {}
    # Expired is absent to `change` too; None deletes.
    assert levels.update(KEY, "tpm", lambda old: level if old is None else None, at=1.0) == level
    assert levels.update(KEY, "tpm", lambda old: None, at=2.0) is None
    assert levels.load([KEY], at=3.0) == {(KEY, "rpm"): level}
    levels.close()


def test_every_handle_reads_what_one_wrote(make_store: StoreFactory, store_url: str) -> None:
    store = make_store()
    writer = levels_of(store)
    level = Level(effective=3, stated=5, last_change=10.0, last_cut=9.5)
    writer.update(KEY, "tpm", lambda old: level, at=10.0)
    other = QuotaKey("proj-b", MODEL)
    from_url = open_level_store(make_store(), url=store_url)
    assert from_url is not None
    assert from_url.load([KEY, other], at=11.0) == {(KEY, "tpm"): level}
    assert levels_of(make_store()).load([other], at=11.0) == {}


# -- learning, shared -----------------------------------------------------------------


def test_a_cut_is_made_once_and_seen_by_every_process(make_store: StoreFactory) -> None:
    clock = FakeClock()
    events_a: list[object] = []
    events_b: list[object] = []
    a, b = adaptive(make_store(), events_a), adaptive(make_store(), events_b)
    now, wall = clock.monotonic(), clock.time()
    for limits in (a, b):
        assert not limits.follow(KEY, wall=wall)  # nothing learned yet
    # Both sent a request before either cut, and both got a 429 for it.
    assert a.cut(KEY, "rpm", 10, now=now + 1, wall=wall + 1, booked_at=now) is not None
    assert b.cut(KEY, "rpm", 10, now=now + 1, wall=wall + 1, booked_at=now) is None
    assert b.effective(KEY, "rpm", 10, now=now + 1, wall=wall + 1) == 7  # the store's answer
    # B booked after A's cut, but paced by its view, which had not seen it yet.
    c = adaptive(make_store(), [])
    assert c.follow(KEY, wall=wall + 2)  # a fresh process reads it at once
    assert c.cut(KEY, "rpm", 10, now=now + 3, wall=wall + 3, booked_at=now + 1.5) is None
    # A request booked after C read the cut, refused all the same: cut again.
    assert c.cut(KEY, "rpm", 10, now=now + 4, wall=wall + 4, booked_at=now + 2.5) is not None
    assert a.refresh(wall=wall + 5) == {KEY}
    assert a.effective(KEY, "rpm", 10, now=now + 5, wall=wall + 5) == 4
    assert [(e.enforced, e.previous) for e in learned(events_a)] == [(7, 10)]
    assert learned(events_b) == []


def test_a_recovery_step_is_taken_once(make_store: StoreFactory) -> None:
    clock = FakeClock()
    events: list[object] = []
    processes = [adaptive(make_store(), events) for _ in range(3)]
    now, wall = clock.monotonic(), clock.time()
    processes[0].cut(KEY, "rpm", 10, now=now, wall=wall, booked_at=now)
    for limits in processes[1:]:
        limits.follow(KEY, wall=wall)
    later = 15.0  # the policy's recovery period
    assert [
        limits.effective(KEY, "rpm", 10, now=now + later, wall=wall + later) for limits in processes
    ] == [8, 8, 8]
    assert [(e.effective, e.ceiling) for e in recovered(events)] == [(8, 10)]
    # One step a period, whoever takes it: 9, then back at the configured limit, when
    # the level is gone from the store, for everyone.
    for step in (2, 3):
        at = step * later
        assert processes[step - 1].effective(KEY, "rpm", 10, now=now + at, wall=wall + at) == (
            7 + step
        )
    assert processes[0].refresh(wall=wall + 3 * later) == {KEY}
    assert not processes[0].has_levels(KEY)
    assert [e.effective for e in recovered(events)] == [8, 9, 10]


def test_a_stated_value_caps_a_cut_and_is_news_once(make_store: StoreFactory) -> None:
    events: list[object] = []
    a, b = adaptive(make_store(), events), adaptive(make_store(), events)
    a.cut(KEY, "rpm", 10, now=0.0, wall=100.0, booked_at=0.0)
    assert b.learn_stated(KEY, "rpm", 5, 10, now=0.0, wall=101.0) is not None
    assert a.learn_stated(KEY, "rpm", 5, 10, now=0.0, wall=102.0) is None  # known already
    assert a.effective(KEY, "rpm", 10, now=0.0, wall=102.0) == 5
    assert a.ceiling(KEY, "rpm", 10) == 5
    # The stated value is the ceiling: recovery never goes above it.
    assert b.effective(KEY, "rpm", 10, now=0.0, wall=1e5) == 5
    assert [(e.enforced, e.source) for e in learned(events)] == [
        (7, "unexpected_429"),
        (5, "quota_value"),
    ]


def test_a_wrong_cut_is_undone_for_everyone_and_a_later_cut_is_kept(
    make_store: StoreFactory,
) -> None:
    clock = FakeClock()
    events: list[object] = []
    a, b = adaptive(make_store(), events), adaptive(make_store(), events)
    now, wall = clock.monotonic(), clock.time()
    assert a.cut(KEY, "rpm", 10, now=now, wall=wall + 1, booked_at=now) is not None
    stamp = a.last_cut(KEY, "rpm")
    assert stamp is not None
    assert b.follow(KEY, wall=wall + 2)
    assert b.effective(KEY, "rpm", 10, now=now + 2, wall=wall + 2) == 7
    # B's answers contradict A's cut: B undoes it, in the store.
    undone = b.revert(KEY, "rpm", 10, now=now + 3, wall=wall + 3, stamp=stamp)
    assert undone is not None
    assert (undone.effective, undone.ceiling) == (10, 10)
    assert a.refresh(wall=wall + 8) == {KEY}
    assert not a.has_levels(KEY)
    # A cut made since is another cut: a stale stamp leaves it alone.
    assert a.cut(KEY, "rpm", 10, now=now + 9, wall=wall + 9, booked_at=now + 8.5) is not None
    assert b.revert(KEY, "rpm", 10, now=now + 10, wall=wall + 10, stamp=stamp) is None
    assert b.effective(KEY, "rpm", 10, now=now + 10, wall=wall + 10) == 7


def test_a_level_below_what_was_admitted_is_lifted_for_everyone(
    make_store: StoreFactory,
) -> None:
    clock = FakeClock()
    a, b = adaptive(make_store()), adaptive(make_store())
    now, wall = clock.monotonic(), clock.time()
    a.cut(KEY, "rpm", 10, now=now, wall=wall, booked_at=now)  # 7
    b.lift(KEY, "rpm", 10, to=8, now=now + 1, wall=wall + 1)  # B has not read it: no-op
    assert b.follow(KEY, wall=wall + 1)
    b.lift(KEY, "rpm", 10, to=8, now=now + 1, wall=wall + 1)
    assert a.refresh(wall=wall + 6) == {KEY}
    assert a.effective(KEY, "rpm", 10, now=now + 6, wall=wall + 6) == 8
    b.lift(KEY, "rpm", 10, to=12, now=now + 7, wall=wall + 7)  # at the ceiling: forgotten
    assert a.refresh(wall=wall + 12) == {KEY}
    assert not a.has_levels(KEY)


# -- through QuotaLimiter -------------------------------------------------------------


def test_a_cut_learned_by_one_limiter_paces_the_other(make_store: StoreFactory) -> None:
    clock = FakeClock()
    events_a: list[object] = []
    events_b: list[object] = []
    a = gate_on(make_store(), clock, on_event=events_a.append)
    b = gate_on(make_store(), clock, on_event=events_b.append)
    b.settle(reserve(b), sent=True)  # B paces this ledger: its view is read
    a.settle(reserve(a), sent=True, diagnosis=rate_limited())  # 10 RPM -> 7
    assert [e.enforced for e in learned(events_a)] == [7]
    clock.advance(5.0)  # B reads the shared levels again at its next settle
    b.settle(reserve(b), sent=True)
    assert b.budget(PROJECT, MODEL).requests == 7
    # Three slots in the window: four more fit under 7, where 10 would take seven.
    waits = [reserve(b).wait for _ in range(5)]
    assert waits[:4] == [0.0] * 4
    assert waits[4] == pytest.approx(55.0, abs=1e-6)  # when the first slot leaves
    assert learned(events_b) == []  # A reported it; B only paces by it
    # A process started now paces by it from its first request.
    c = gate_on(make_store(), clock)
    assert c.budget(PROJECT, MODEL).requests == 7
    for gate in (a, b, c):
        gate.close()


def test_four_limiters_agree_and_report_the_change_once(make_store: StoreFactory) -> None:
    clock = FakeClock()
    events: list[object] = []
    gates = [gate_on(make_store(), clock, on_event=events.append) for _ in range(4)]
    permits = [reserve(gate) for gate in gates]  # one burst, booked before any cut
    clock.advance(1.0)
    for gate, permit in zip(gates, permits, strict=True):
        gate.settle(permit, sent=True, diagnosis=rate_limited())
    assert [(e.enforced, e.previous) for e in learned(events)] == [(7, 10)]
    assert [gate.budget(PROJECT, MODEL).requests for gate in gates] == [7] * 4
    clock.advance(15.0)  # the policy's recovery period
    assert [gate.budget(PROJECT, MODEL).requests for gate in gates] == [8] * 4
    assert [e.effective for e in recovered(events)] == [8]
    # A stated value from the server is news once, whoever hears it.
    for gate in gates:
        gate.settle(reserve(gate), sent=True, diagnosis=rate_limited(limit=6))
    assert [e.enforced for e in learned(events)] == [7, 6]
    assert [gate.budget(PROJECT, MODEL).requests for gate in gates] == [6] * 4


def test_shared_false_keeps_learning_in_the_process(make_store: StoreFactory) -> None:
    clock = FakeClock()
    local = AdaptivePolicy(shared=False)
    a = gate_on(make_store(), clock, adaptive=local)
    b = gate_on(make_store(), clock, adaptive=local)
    a.settle(reserve(a), sent=True, diagnosis=rate_limited())
    clock.advance(5.0)
    b.settle(reserve(b), sent=True)
    assert (a.budget(PROJECT, MODEL).requests, b.budget(PROJECT, MODEL).requests) == (7, 10)


# -- Redis outages --------------------------------------------------------------------


@pytest.mark.redis
def test_a_dead_redis_degrades_to_local_learning_then_merges(redis_server: RedisServer) -> None:
    clock = FakeClock()
    events: list[object] = []
    url = f"{redis_server.url}?retry_after=5&socket_timeout=0.5"
    a = gate_on(url, clock, on_event=events.append)
    permit = reserve(a)
    redis_server.stop()
    a.settle(permit, sent=True, diagnosis=rate_limited())  # raises nothing
    assert [e.enforced for e in learned(events)] == [7]
    assert a.budget(PROJECT, MODEL).requests == 7  # learned here, paced by here
    redis_server.start()  # empty: what the fleet knew is gone
    b = gate_on(url, clock)
    b.settle(reserve(b), sent=True, diagnosis=rate_limited(limit=8))  # B states 8 in Redis
    clock.advance(5.0)
    a.settle(reserve(a), sent=True)  # Redis is asked again: A's cut is merged in
    c = gate_on(url, clock)
    assert c.budget(PROJECT, MODEL).requests == 7  # the lower level wins...
    clock.advance(60.0)
    assert c.budget(PROJECT, MODEL).requests == 8
    clock.advance(600.0)
    assert c.budget(PROJECT, MODEL).requests == 8  # ...under the stated ceiling
    client = redis.Redis.from_url(redis_server.url)
    try:
        name = f"gg:{{{PROJECT}:{MODEL}}}:levels"
        assert client.hkeys(name) == [b"rpm"]
        assert 0 < client.ttl(name) <= TTL
    finally:
        client.close()
    for gate in (a, b, c):
        gate.close()
