"""Stores on one URL in one process stand on one backend: one Redis connection pool per
URL, one open SQLite file per path, each closed with its last store. A real
redis-server, the real SDK against the emulator, real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from google.genai import types

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import StoreDamaged, StoreError
from gemini_guard.guard import Guard
from gemini_guard.policies.breaker_stores import RedisBreakerStore, SQLiteBreakerStore
from gemini_guard.quota.shared_levels import SQLiteLevelStore
from gemini_guard.quota.stores import open_store
from gemini_guard.quota.stores.sqlite import SQLiteStore
from gemini_guard.stores.backend import RedisBackend
from gemini_guard.stores.url import parse_store_url
from tests.support.redis_server import RedisServer, redis_server
from tests.support.sdk_clients import emulator_client

__all__ = ["redis_server"]

FLASH = "gemini-2.5-flash"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serve(Scenario(name="shared", default_tier="tier1"), clock=FakeClock()) as server:
        yield server


def _our_connections(server: RedisServer) -> list[str]:
    """The client connections Redis holds (CLIENT LIST), but the one asking."""
    with redis.Redis.from_url(server.url) as probe:
        me = probe.client_id()
        return [
            f"{client['addr']} last command {client['cmd']}"
            for client in probe.client_list()
            if int(client["id"]) != me
        ]


@pytest.mark.redis
def test_a_guard_with_quota_breakers_and_cache_on_one_redis_uses_one_connection(
    redis_server: RedisServer, emulator: EmulatorServer
) -> None:
    url = f"{redis_server.url}?retry_after=5"
    guard = Guard(
        client=emulator_client(emulator, "k-one-pool"),
        clock=FakeClock(),
        tier="tier1",  # paced: every call books a slot in the ledger
        store=url,  # the quota ledger, the learned levels and the breakers
        cache=url,  # and the response cache
        log=False,
    )
    try:
        config = types.GenerateContentConfig(temperature=0)
        for n in range(3):
            assert guard.models.generate_content(model=FLASH, contents=f"q{n}", config=config).text
        assert guard.models.generate_content(model=FLASH, contents="q0", config=config).text
        with redis.Redis.from_url(redis_server.url) as probe:
            keys = {key.decode().split(":")[1] for key in probe.keys("gg:*")}
        assert {"cache", "breaker"} <= keys  # the cache and the breakers wrote there
        assert any(key.startswith("{") for key in keys), keys  # and the ledger
        # One caller thread, one pooled connection for every store (each store used
        # to open its own client: four connections here).
        assert len(_our_connections(redis_server)) == 1, _our_connections(redis_server)
    finally:
        guard.close()
    assert _our_connections(redis_server) == []  # closed with the last store


@pytest.mark.redis
def test_handles_on_one_url_share_a_client_until_the_last_closes(
    redis_server: RedisServer,
) -> None:
    quota = open_store(f"{redis_server.url}?prefix=a&on_outage=fail")
    breakers = RedisBreakerStore.from_url(f"{redis_server.url}?prefix=b&retry_after=2")
    other = RedisBackend(parse_store_url(f"{redis_server.url}?socket_timeout=0.5"))
    try:
        first = RedisBackend(parse_store_url(redis_server.url))
        second = RedisBackend(parse_store_url(f"{redis_server.url}?prefix=x"))
        assert first.client is second.client  # our options are not the client's
        assert other.client is not first.client  # another timeout: another client
        second.close()
        second.close()  # a second close gives nothing back twice
        assert first.client.ping()
        first.close()
        quota.close()
        assert breakers.load("p/m") is None  # still open: the breakers hold it
    finally:
        breakers.close()
        other.close()
    assert _our_connections(redis_server) == []


def test_stores_on_one_sqlite_path_share_a_connection_per_thread(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    quota = SQLiteStore(path)
    levels = SQLiteLevelStore(path)
    breakers = SQLiteBreakerStore(path)
    try:
        connections = {id(s._file.connection()) for s in (quota, levels, breakers)}
        assert len(connections) == 1
        elsewhere: list[int] = []
        thread = threading.Thread(target=lambda: elsewhere.append(id(quota._file.connection())))
        thread.start()
        thread.join()
        assert len(elsewhere) == 1
        assert elsewhere[0] not in connections  # one per thread
        outside = sqlite3.connect(path)
        tables = {row[0] for row in outside.execute("SELECT name FROM sqlite_master")}
        outside.close()
        assert {"quota_slots", "quota_levels", "breaker_snapshots"} <= tables
        quota.close()
        levels.close()
        assert breakers.load("p/m") is None  # the last handle keeps the file open
    finally:
        quota.close()
        levels.close()
        breakers.close()
    with pytest.raises(StoreError, match="is closed"):
        breakers.load("p/m")


def test_a_file_damaged_while_open_is_checked_again_by_the_next_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SQLiteStore(path)
    try:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = bytearray(path.read_bytes())
        data[0:16] = b"not a database!!"
        path.write_bytes(bytes(data))
        # As when each store opened its own file: the damage is found, and the opt-in
        # reset moves the file aside for the new store.
        with pytest.raises(StoreDamaged, match="on_corrupt=reset"):
            SQLiteBreakerStore(path)
        fresh = SQLiteBreakerStore(path, on_corrupt="reset")
        assert fresh.load("p/m") is None
        assert (tmp_path / "state.db.damaged-1").exists()
        fresh.close()
    finally:
        first.close()
