"""One contract for every response-cache store: memory, SQLite, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gemini_guard.cache.stores import CacheStore, open_cache_store
from gemini_guard.clock import FakeClock
from gemini_guard.errors import ConfigError
from tests.support.redis_server import redis_server

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
