"""Sharing learned limits: when the view is read, what is kept, how stores are opened.

The stores themselves, and learning across processes, are in
tests/contract/test_shared_levels.py (memory, SQLite and Redis).
"""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation
from gemini_guard.errors import ConfigError
from gemini_guard.quota import AdaptiveLimits, AdaptivePolicy, QuotaKey, QuotaLimiter
from gemini_guard.quota.adaptive import _MAX_FOLLOWED
from gemini_guard.quota.shared_levels import (
    Level,
    MemoryLevelStore,
    RedisLevelStore,
    open_level_store,
)
from gemini_guard.quota.stores.memory import MemoryStore

KEY = QuotaKey("p", "gemini-2.5-flash")


def test_the_view_is_read_again_only_after_the_refresh_period() -> None:
    limits = AdaptiveLimits(AdaptivePolicy(refresh_period=5.0), shared=MemoryLevelStore())
    assert limits.refresh_due(1000.0)  # never read yet
    limits.refresh(wall=1000.0)
    assert not limits.refresh_due(1000.0)
    assert not limits.refresh_due(1004.9)
    assert limits.refresh_due(1005.0)
    assert limits.refresh_due(990.0)  # the wall clock went back: read again


def test_without_a_store_nothing_is_ever_read() -> None:
    limits = AdaptiveLimits()
    assert not limits.refresh_due(0.0)
    assert limits.follows(KEY)
    assert not limits.follow(KEY, wall=0.0)
    assert limits.refresh(wall=0.0) == set()


def test_a_refresh_reports_the_ledgers_whose_levels_changed() -> None:
    store = MemoryLevelStore()
    mine, theirs = AdaptiveLimits(shared=store), AdaptiveLimits(shared=store)
    other = QuotaKey("q", "gemini-2.5-flash")
    for key in (KEY, other):
        mine.follow(key, wall=0.0)
    theirs.cut(KEY, "tpm", 1000, now=0.0, wall=1.0, booked_at=0.0)
    assert mine.refresh(wall=2.0) == {KEY}
    assert mine.has_levels(KEY)
    assert not mine.has_levels(other)
    assert mine.refresh(wall=3.0) == set()  # nothing new


def test_the_view_follows_a_bounded_number_of_ledgers() -> None:
    store = MemoryLevelStore()
    limits = AdaptiveLimits(shared=store)
    learned = QuotaKey("p0", "m")
    AdaptiveLimits(shared=store).cut(learned, "rpm", 10, now=0.0, wall=0.0, booked_at=0.0)
    assert limits.follow(learned, wall=1.0)
    for index in range(1, _MAX_FOLLOWED):
        assert not limits.follow(QuotaKey(f"p{index}", "m"), wall=1.0)
    # One more: the view starts over (and says so: budgets made from it are stale).
    assert limits.follow(QuotaKey("one-more", "m"), wall=1.0)
    assert not limits.has_levels(learned)
    assert limits.follow(learned, wall=2.0)  # read again when paced again
    assert limits.effective(learned, "rpm", 10, now=0.0, wall=2.0) == 7


def test_the_memory_table_is_bounded() -> None:
    store = MemoryLevelStore(max_levels=3)
    keys = [QuotaKey(f"p{i}", "m") for i in range(5)]
    for index, key in enumerate(keys):
        store.update(key, "rpm", lambda old: Level(1, None, 0.0, 0.0), at=float(index))
    assert sorted(k.project for k, _ in store.load(keys, at=10.0)) == ["p2", "p3", "p4"]


def test_limiters_given_one_memory_store_share_its_levels() -> None:
    shared, apart = MemoryStore(), MemoryStore()
    assert open_level_store(shared) is open_level_store(shared)
    assert open_level_store(shared) is not open_level_store(apart)
    clock = FakeClock()
    a, b, c = (
        QuotaLimiter(store=s, clock=clock, tier="free", latency_allowance=0.0)
        for s in (shared, shared, apart)
    )
    refused = Diagnosis(  # names the quota, without its value: a cut
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="Quota exceeded for metric: generate_content_free_tier_requests",
        category=Category.RATE_LIMITED,
        retryable=True,
        quota=QuotaViolation(
            scope="minute",
            unit="requests",
            tier="free",
            limit=None,
            model=KEY.model,
            quota_id="GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            metric=None,
        ),
    )
    a.settle(
        a.reserve(project=KEY.project, model=KEY.model, tokens=0), sent=True, diagnosis=refused
    )
    assert [g.budget(KEY.project, KEY.model).requests for g in (a, b, c)] == [7, 7, 10]


def test_redis_options_come_from_the_store_url() -> None:
    levels = RedisLevelStore.from_url(
        "redis://user:secret@127.0.0.1:1/0?prefix=app&retry_after=2&on_outage=fail"
    )
    try:
        assert levels.url == "redis://127.0.0.1:1/0"  # no credentials
        assert "secret" not in repr(levels)
        assert levels._name(KEY) == "app:{p:gemini-2.5-flash}:levels"
    finally:
        levels.close()
    with pytest.raises(ConfigError, match="retry_after"):
        RedisLevelStore.from_url("redis://127.0.0.1:1/0?retry_after=soon")
    with pytest.raises(ConfigError, match="braces"):
        RedisLevelStore.from_url("redis://127.0.0.1:1/0?prefix={x}")


def test_an_unknown_store_keeps_levels_in_the_limiter() -> None:
    class Elsewhere(MemoryStore):
        @property
        def url(self) -> str:
            return "custom://somewhere"

    assert open_level_store(Elsewhere()) is None


def test_refresh_period_is_validated() -> None:
    with pytest.raises(ConfigError, match="refresh_period"):
        AdaptivePolicy(refresh_period=0.0)
