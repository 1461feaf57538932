"""Every quota store, behind one fixture: the contract suite runs against each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gemini_guard.quota import QuotaStore, open_store
from tests.support.redis_server import redis_server

__all__ = ["StoreFactory", "redis_server"]

# A factory so a test can open several handles on one store (threads, processes):
# each call returns a new handle (memory: the same instance, it is per process).
StoreFactory = Callable[[], QuotaStore]

STORES = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'quota.db'}"
    server = request.getfixturevalue("redis_server")
    return f"{server.url}?on_outage=fail"


@pytest.fixture
def make_store(store_url: str) -> Iterator[StoreFactory]:
    opened: list[QuotaStore] = []
    shared: QuotaStore | None = None

    def factory() -> QuotaStore:
        nonlocal shared
        if store_url == "memory://":
            if shared is None:
                shared = open_store(store_url)
                opened.append(shared)
            return shared
        store = open_store(store_url)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> QuotaStore:
    return make_store()
