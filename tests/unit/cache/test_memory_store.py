"""The memory store: TTL on the caller's clock, LRU bound."""

from __future__ import annotations

from gemini_guard.cache.stores import open_cache_store
from gemini_guard.clock import FakeClock


def test_ttl_expiry_under_a_fake_clock() -> None:
    clock = FakeClock()
    store = open_cache_store("memory://")
    store.put("p/a", b"1", now=clock.time(), ttl=60)
    clock.advance(59.9)
    assert store.get("p/a", now=clock.time()) == b"1"
    clock.advance(0.1)
    assert store.get("p/a", now=clock.time()) is None
    assert store.count() == 0


def test_lru_bound_drops_the_least_recently_used() -> None:
    clock = FakeClock()
    store = open_cache_store("memory://", max_entries=3)
    for name in "abc":
        store.put(f"p/{name}", name.encode(), now=clock.time(), ttl=60)
    assert store.get("p/a", now=clock.time()) == b"a"  # a is now the most recent
    store.put("p/d", b"d", now=clock.time(), ttl=60)
    assert store.get("p/b", now=clock.time()) is None
    assert [store.get(f"p/{n}", now=clock.time()) for n in "acd"] == [b"a", b"c", b"d"]
    assert store.count() == 3
