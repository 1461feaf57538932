"""One contract for every response-cache store: memory, SQLite, Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemini_guard.cache.stores import CacheStore, StoreSkipped, open_cache_store
from gemini_guard.cache.stores.redis import RedisCacheStore
from gemini_guard.clock import FakeClock
from gemini_guard.errors import ConfigError, StoreError
from tests.support.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cache.db'}"
    server = request.getfixturevalue("redis_server")
    return str(server.url)


@pytest.fixture(params=KINDS)
def cache_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request, tmp_path)


@pytest.fixture(params=KINDS[1:])  # a memory store is one process's own: nothing to share
def shared_cache_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request, tmp_path)


@pytest.fixture
def store(cache_url: str) -> Iterator[CacheStore]:
    opened = open_cache_store(cache_url, max_entries=3)
    yield opened
    opened.close()


def test_put_get_and_overwrite(store: CacheStore) -> None:
    clock = FakeClock()
    assert store.get("p/a", now=clock.time()) is None
    store.put("p/a", b"\x00one", now=clock.time(), ttl=60)
    assert store.get("p/a", now=clock.time()) == b"\x00one"
    store.put("p/a", b"two", now=clock.time(), ttl=60)
    assert store.get("p/a", now=clock.time()) == b"two"
    assert store.count() == 1


def test_expiry_follows_the_callers_clock(store: CacheStore) -> None:
    clock = FakeClock()
    store.put("p/a", b"x", now=clock.time(), ttl=30)
    clock.advance(29)
    assert store.get("p/a", now=clock.time()) == b"x"
    clock.advance(1)
    assert store.get("p/a", now=clock.time()) is None
    assert store.count() == 0


def test_least_recently_used_is_evicted(store: CacheStore) -> None:
    clock = FakeClock()  # never moves: order must not depend on time
    for name in "abc":
        store.put(f"p/{name}", name.encode(), now=clock.time(), ttl=60)
    assert store.get("p/a", now=clock.time()) == b"a"
    store.put("p/d", b"d", now=clock.time(), ttl=60)
    assert store.get("p/b", now=clock.time()) is None
    assert {n: store.get(f"p/{n}", now=clock.time()) for n in "acd"} == {
        "a": b"a",
        "c": b"c",
        "d": b"d",
    }
    assert store.count() == 3


def test_delete_and_clear_by_project(store: CacheStore) -> None:
    clock = FakeClock()
    store.put("alpha/1", b"1", now=clock.time(), ttl=60)
    store.put("alpha/2", b"2", now=clock.time(), ttl=60)
    store.put("beta/1", b"3", now=clock.time(), ttl=60)
    assert store.delete("alpha/1") is True
    assert store.delete("alpha/1") is False
    assert store.clear("alpha/") == 1
    assert store.get("beta/1", now=clock.time()) == b"3"


def test_two_handles_share_entries(shared_cache_url: str) -> None:
    clock = FakeClock()
    first, second = open_cache_store(shared_cache_url), open_cache_store(shared_cache_url)
    try:
        first.put("p/a", b"shared", now=clock.time(), ttl=60)
        assert second.get("p/a", now=clock.time()) == b"shared"
    finally:
        first.close()
        second.close()


def test_stats_add_up_per_project(store: CacheStore) -> None:
    assert store.read_stats() == {}
    store.add_stats("alpha", {"hits": 2, "tokens_saved": 300, "dollars_saved": 0.0125})
    store.add_stats("alpha", {"hits": 1, "misses": 4, "dollars_saved": 0.0025})
    store.add_stats("beta", {"coalesced": 7})
    stats = store.read_stats()
    assert set(stats) == {"alpha", "beta"}
    alpha = stats["alpha"]
    assert (alpha["hits"], alpha["misses"], alpha["tokens_saved"]) == (3, 4, 300)
    assert isinstance(alpha["hits"], int)  # counts come back as integers
    assert alpha["dollars_saved"] == pytest.approx(0.015)
    assert stats["beta"] == {"coalesced": 7}


def test_stats_outlive_clearing_entries(store: CacheStore) -> None:
    clock = FakeClock()
    store.put("alpha/1", b"1", now=clock.time(), ttl=60)
    store.add_stats("alpha", {"hits": 1})
    store.clear("alpha/")
    assert store.read_stats() == {"alpha": {"hits": 1}}


def test_stats_of_two_handles_add_up(shared_cache_url: str) -> None:
    first, second = open_cache_store(shared_cache_url), open_cache_store(shared_cache_url)
    try:
        first.add_stats("p", {"hits": 1, "dollars_saved": 0.5})
        second.add_stats("p", {"hits": 2, "dollars_saved": 0.25})
        assert (
            second.read_stats() == first.read_stats() == {"p": {"hits": 3, "dollars_saved": 0.75}}
        )
    finally:
        first.close()
        second.close()


def test_stats_from_many_threads_are_not_lost(shared_cache_url: str) -> None:
    stores = [open_cache_store(shared_cache_url) for _ in range(4)]

    def count(store: CacheStore) -> None:
        for _ in range(25):
            store.add_stats("p", {"hits": 1, "tokens_saved": 10})

    threads = [threading.Thread(target=count, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert stores[0].read_stats() == {"p": {"hits": 100, "tokens_saved": 1000}}
    finally:
        for opened in stores:
            opened.close()


def test_a_gated_get_answers_only_while_the_credential_is_accepted(store: CacheStore) -> None:
    clock = FakeClock()
    store.put("s/a", b"answer", now=clock.time(), ttl=3600)
    assert store.get("s/a", now=clock.time(), credential="c1") is None  # never accepted
    store.record_credential("c1", accepted=True, now=clock.time(), ttl=100)
    assert store.get("s/a", now=clock.time(), credential="c1") == b"answer"
    assert store.get("s/a", now=clock.time(), credential="c2") is None  # another one
    assert store.get("s/a", now=clock.time()) == b"answer"  # ungated
    clock.advance(99)
    assert store.get("s/a", now=clock.time(), credential="c1") == b"answer"
    clock.advance(1)  # the acceptance ran out: unknown again
    assert store.get("s/a", now=clock.time(), credential="c1") is None
    store.record_credential("c1", accepted=True, now=clock.time(), ttl=100)
    store.record_credential("c1", accepted=False, now=clock.time(), ttl=100)
    assert store.get("s/a", now=clock.time(), credential="c1") is None  # refused
    assert store.get("s/a", now=clock.time()) == b"answer"  # the entry itself is kept


def test_a_refusal_recorded_by_one_handle_stops_the_others(shared_cache_url: str) -> None:
    clock = FakeClock()
    first, second = open_cache_store(shared_cache_url), open_cache_store(shared_cache_url)
    try:
        first.put("s/a", b"answer", now=clock.time(), ttl=60)
        first.record_credential("c", accepted=True, now=clock.time(), ttl=60)
        assert second.get("s/a", now=clock.time(), credential="c") == b"answer"
        first.record_credential("c", accepted=False, now=clock.time(), ttl=60)
        assert second.get("s/a", now=clock.time(), credential="c") is None
    finally:
        first.close()
        second.close()


def test_the_secret_is_made_once_and_shared(cache_url: str) -> None:
    first, second = open_cache_store(cache_url), open_cache_store(cache_url)
    try:
        secret = first.secret()
        assert len(secret) == 32
        assert first.secret() == secret
        if cache_url == "memory://":
            assert second.secret() != secret  # one process's own
        else:
            assert second.secret() == secret
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nowhere", "is not a cache URL"),
        ("ftp://x", "unknown scheme"),
        ("memory://x", "takes no path"),
        ("sqlite:///", "names no database file"),
    ],
)
def test_bad_urls_are_clear_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_cache_store(url)


@pytest.mark.redis
def test_a_redis_cache_that_stops_answering_is_left_alone_for_retry_after(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    # The quota store's options may share the URL: on_outage is not the cache's.
    store = open_cache_store(f"{redis_server.url}?retry_after=2&on_outage=fail", clock=clock)
    assert isinstance(store, RedisCacheStore)
    store.put("p/a", b"kept", now=clock.time(), ttl=600)
    redis_server.stop()
    with pytest.raises(StoreError, match=r"does not answer .* not asked again for 2 s") as first:
        store.get("p/a", now=clock.time())
    assert not isinstance(first.value, StoreSkipped)
    assert store.degraded
    redis_server.start()  # back, but not asked until the pause is over
    clock.advance(1.9)
    for action in (
        lambda: store.get("p/a", now=clock.time()),
        lambda: store.put("p/b", b"lost", now=clock.time(), ttl=600),
        store.count,
        store.secret,
    ):
        with pytest.raises(StoreSkipped):
            action()
    clock.advance(0.1)
    assert store.get("p/a", now=clock.time()) is None  # asked again: an empty new server
    assert not store.degraded
    store.put("p/b", b"kept", now=clock.time(), ttl=600)
    assert store.get("p/b", now=clock.time()) == b"kept"
    store.close()


@pytest.mark.redis
def test_a_redis_cache_still_down_after_the_pause_pauses_again_quietly(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = open_cache_store(f"{redis_server.url}?retry_after=2", clock=clock)
    redis_server.stop()
    with pytest.raises(StoreError):
        store.count()
    clock.advance(2.0)
    with pytest.raises(StoreSkipped, match="still does not answer"):
        store.count()  # asked again, failed again: no second "does not answer" warning
    clock.advance(1.0)
    with pytest.raises(StoreSkipped, match="is not asked"):
        store.count()  # a new pause from the second failure
    store.close()
