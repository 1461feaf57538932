"""`open_backend(url)`: what a store stands on, shared within a process where it can be.

- `memory://`: nothing to share; each store keeps its own state (`MemoryBackend`).
- `sqlite:///path`: one open file per path and process (`SQLiteBackend.tables` gives a
  store its `SQLiteFile` handle; see `stores.sqlite`).
- `redis://...`: one synchronous redis-py client, so one connection pool, per process
  and client URL (the URL without the stores' own options, and its two timeouts). The
  quota ledger, the learned levels, the breakers and the cache opened on one URL in
  one process share it: one pool of connections to Redis instead of one per store.
  Each `RedisBackend` is a counted handle on it; the last one closed closes the pool.
  Asyncio clients are not shared: each handle keeps one per event loop
  (`async_client`), since a redis-py asyncio client belongs to the loop it was made on.

A forked child opens its own: the registries are keyed by process id.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gemini_guard.errors import ConfigError
from gemini_guard.stores.sqlite import SQLiteFile
from gemini_guard.stores.url import StoreUrl, parse_store_url

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    import redis
    import redis.asyncio

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "SQLiteBackend", "open_backend"]


def open_backend(url: str | StoreUrl, *, option: str = "store") -> Backend:
    """The backend `url` names (parsed with `parse_store_url` unless it already is)."""
    parsed = url if isinstance(url, StoreUrl) else parse_store_url(url, option=option)
    if parsed.kind == "memory":
        return MemoryBackend(parsed)
    if parsed.kind == "sqlite":
        return SQLiteBackend(parsed)
    return RedisBackend(parsed, option=option)


@dataclass(frozen=True, slots=True)
class MemoryBackend:
    """`memory://`: state lives in the store object itself; never shared."""

    url: StoreUrl

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class SQLiteBackend:
    """`sqlite:///path`: hands each store a `SQLiteFile` on the one open file of `path`."""

    url: StoreUrl

    def tables(
        self,
        *,
        what: str,
        schema: str,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
    ) -> SQLiteFile:
        assert self.url.path is not None  # a sqlite StoreUrl always has one
        return SQLiteFile(
            self.url.path, what=what, schema=schema, migrate=migrate, on_corrupt=self.url.on_corrupt
        )

    def close(self) -> None:
        """Nothing held: each `SQLiteFile` from `tables` is closed by its store."""


def import_redis(option: str = "store") -> Any:
    """The redis package (with its asyncio client), or a ConfigError saying how to get it."""
    try:
        import redis
        import redis.asyncio
    except ImportError as exc:
        raise ConfigError(
            f"a redis:// {option} needs the redis client: pip install 'gemini-guard[redis]'"
        ) from exc
    return redis


class _SharedClient:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.handles = 0  # guarded by _clients_lock


_clients: dict[tuple[int, str, float, float], _SharedClient] = {}
_clients_lock = threading.Lock()


class RedisBackend:
    """A counted handle on the process's redis-py client for one Redis URL.

    `client` is shared (thread-safe; its pool hands each thread a connection);
    `unreachable` are the errors that mean Redis did not answer at all (refused, timed
    out), `error` is any Redis failure and `no_script` the NOSCRIPT answer.
    """

    def __init__(self, url: StoreUrl, *, option: str = "store") -> None:
        if url.kind != "redis":
            raise ConfigError(f"{option}={url.shown!r} is not a Redis URL")
        self.url = url
        self.shown = url.shown
        self.redis: Any = import_redis(option)
        errors = self.redis.exceptions
        self.unreachable: tuple[type[Exception], ...] = (
            errors.ConnectionError,
            errors.TimeoutError,
            OSError,
        )
        self.error: type[Exception] = errors.RedisError
        self.no_script: type[Exception] = errors.NoScriptError
        self._name = (os.getpid(), url.client_url, url.socket_timeout, url.connect_timeout)
        with _clients_lock:
            shared = _clients.get(self._name)
            if shared is None:
                shared = _clients[self._name] = _SharedClient(self._new_client(self.redis))
            shared.handles += 1
        self._shared = shared
        self.client: redis.Redis = shared.client
        self._aclients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._closed = False

    def _new_client(self, module: Any) -> Any:
        # One quick retry on a fresh connection, no backoff: a pooled connection may
        # be stale after a Redis restart, and redis-py's default retries with backoff
        # would hold a call for seconds on a frozen server.
        return module.Redis.from_url(
            self.url.client_url,
            socket_timeout=self.url.socket_timeout,
            socket_connect_timeout=self.url.connect_timeout,
            retry=module.retry.Retry(module.backoff.NoBackoff(), 1),
        )

    def __repr__(self) -> str:
        return f"RedisBackend({self.shown!r})"

    def async_client(self) -> redis.asyncio.Redis:
        """This handle's asyncio client for the running loop, made on first use."""
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            for old in [old for old in self._aclients if old.is_closed()]:
                del self._aclients[old]
            module = self.redis
            client = module.asyncio.Redis.from_url(
                self.url.client_url,
                socket_timeout=self.url.socket_timeout,
                socket_connect_timeout=self.url.connect_timeout,
                retry=module.asyncio.retry.Retry(module.backoff.NoBackoff(), 1),
            )
            self._aclients[loop] = client
        return client

    def close(self) -> None:
        """Give the handle back (the last one closes the shared client)."""
        for loop, client in list(self._aclients.items()):
            if not loop.is_closed() and loop.is_running():
                loop.create_task(client.aclose())
        self._aclients.clear()
        if self._closed:
            return
        self._closed = True
        with _clients_lock:
            self._shared.handles -= 1
            last = self._shared.handles == 0
            if last and _clients.get(self._name) is self._shared:
                del _clients[self._name]
        if last:
            self._shared.client.close()

    async def aclose(self) -> None:
        """`close`, awaiting the asyncio client of the running loop."""
        client = self._aclients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()


Backend = MemoryBackend | SQLiteBackend | RedisBackend
