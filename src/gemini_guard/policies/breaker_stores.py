"""Breaker state that several processes share: SQLite (one host) and Redis (many hosts).

    open_breaker_store("memory://")                 this process only
    open_breaker_store("sqlite:///state.db")        processes of one host
    open_breaker_store("redis://localhost:6379/0")  processes on many hosts

The same URL as the quota store's (`Guard(store=...)` gives one URL to both); the
breaker keeps its snapshots in a table / keys of its own beside the quota ledgers.

`update(key, change)` is atomic for its key in every store, so two processes never
both take the last half-open probe or lose each other's failures:
- SQLite: `BEGIN IMMEDIATE` (the write lock is taken before reading), read, apply
  `change`, write, `COMMIT`; WAL and a busy timeout let processes queue.
- Redis: compare and swap. `change` is applied to the state this process last read
  or wrote for the key, and a short script writes the result only if the key still
  holds that state; if not, it returns what the key holds, and `change` runs again on
  that. `change` is pure, so running it twice is harmless. A breaker admits, then
  records, so a call costs one GET and one script (the `WATCH` / `GET` / `MULTI` /
  `SET` / `EXEC` this replaced cost four round trips a call). asyncio callers use
  redis-py's asyncio client (no worker thread). Keys are hash-tagged
  (`gg:breaker:{project/model}`) for Redis Cluster and expire a day after their last
  change (a breaker idle that long is closed in all but name).

A Redis that stops answering degrades to a local in-memory store (a warning on the
"gemini_guard" logger; retried every `retry_after` clock seconds: `stores.outage`),
since a breaker store outage must not fail calls that a healthy model could serve;
`?on_outage=fail` raises `StoreError` instead. SQLite errors are `StoreError`s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import StoreError
from gemini_guard.policies.breaker import BreakerSnapshot, BreakerStore, MemoryBreakerStore
from gemini_guard.stores.backend import RedisBackend
from gemini_guard.stores.outage import Outage
from gemini_guard.stores.sqlite import SQLiteFile
from gemini_guard.stores.url import (
    CONNECT_TIMEOUT,
    RETRY_AFTER,
    SOCKET_TIMEOUT,
    OnCorrupt,
    OnOutage,
    StoreUrl,
    parse_store_url,
    sqlite_file_of,
    with_options,
)

__all__ = ["RedisBreakerStore", "SQLiteBreakerStore", "open_breaker_store"]

_log = logging.getLogger("gemini_guard")

Change = Callable[[BreakerSnapshot | None], BreakerSnapshot]


def open_breaker_store(url: str, *, clock: Clock | None = None) -> BreakerStore:
    """The breaker store at `url`; ConfigError for a URL no backend serves."""
    parsed = parse_store_url(url)
    if parsed.kind == "memory":
        return MemoryBreakerStore()
    if parsed.kind == "sqlite":
        return SQLiteBreakerStore.from_url(parsed)
    return RedisBreakerStore.from_url(parsed, clock=clock)


def _raw(value: object) -> bytes | None:
    """A state as the client read it (bytes: the clients do not decode answers)."""
    if value is None or isinstance(value, bytes):
        return value
    raise StoreError(f"a breaker state read from Redis is {type(value).__name__}, not bytes")


def _swap_args(name: str, expected: bytes | None, new: bytes) -> list[str | bytes | int]:
    if expected is None:
        return [name, b"0", b"", new, _TTL]
    return [name, b"1", expected, new, _TTL]


def _dump(snapshot: BreakerSnapshot) -> str:
    return json.dumps(snapshot.to_dict(), separators=(",", ":"))


def _parse(raw: str | bytes | None, where: str) -> BreakerSnapshot | None:
    if raw is None:
        return None
    try:
        return BreakerSnapshot.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"unreadable breaker state in {where}: {exc}") from exc


_SCHEMA = """
CREATE TABLE IF NOT EXISTS breaker_snapshots (
    key TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL
)
"""


class SQLiteBreakerStore:
    """Breaker snapshots in a SQLite file (one row per breaker); one connection per thread."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 10.0, on_corrupt: OnCorrupt = "fail"
    ) -> None:
        self._file = SQLiteFile(
            path,
            what="the SQLite breaker store",
            schema=_SCHEMA,
            busy_timeout=busy_timeout,
            on_corrupt=on_corrupt,
        )

    @classmethod
    def from_url(cls, url: str | StoreUrl) -> SQLiteBreakerStore:
        """`sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite:///~/path`."""
        path, on_corrupt = sqlite_file_of(url)
        return cls(path, on_corrupt=on_corrupt)

    @property
    def path(self) -> Path:
        return self._file.path

    def __repr__(self) -> str:
        return f"SQLiteBreakerStore({str(self.path)!r})"

    def load(self, key: str) -> BreakerSnapshot | None:
        rows = self._file.read("SELECT snapshot FROM breaker_snapshots WHERE key = ?", (key,))
        return _parse(rows[0][0] if rows else None, str(self.path))

    def update(self, key: str, change: Change) -> BreakerSnapshot:
        with self._file.transaction() as db:
            row = db.execute(
                "SELECT snapshot FROM breaker_snapshots WHERE key = ?", (key,)
            ).fetchone()
            new = change(_parse(row[0] if row else None, str(self.path)))
            db.execute(
                "INSERT INTO breaker_snapshots (key, snapshot) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET snapshot = excluded.snapshot",
                (key, _dump(new)),
            )
        return new

    async def aload(self, key: str) -> BreakerSnapshot | None:
        return await asyncio.to_thread(self.load, key)

    async def aupdate(self, key: str, change: Change) -> BreakerSnapshot:
        return await asyncio.to_thread(self.update, key, change)

    def close(self) -> None:
        self._file.close()


_TTL = 86_400  # seconds a breaker key outlives its last change
_MAX_RACES = 100  # lost swaps in a row before giving up
# KEYS[1]: the breaker's key; ARGV: 1 if a state is expected (0: none), the expected
# state, the new state, its time to live. {1} when swapped, else {0, what the key holds}.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if (ARGV[1] == '0' and not current) or (ARGV[1] == '1' and current == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
  return {1}
end
return {0, current}
"""
_SWAP_SHA = hashlib.sha1(_SWAP.encode()).hexdigest()


class RedisBreakerStore:
    """Breaker snapshots in Redis, one JSON string per breaker, swapped by a script."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gg",
        on_outage: OnOutage = "degrade",
        retry_after: float = RETRY_AFTER,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        parsed = parse_store_url(
            with_options(
                url,
                prefix=prefix,
                on_outage=on_outage,
                retry_after=retry_after,
                socket_timeout=socket_timeout,
                connect_timeout=connect_timeout,
            )
        )
        self._backend = RedisBackend(parsed)
        self._client = self._backend.client
        self._error = self._backend.error
        self._no_script = self._backend.no_script
        # Per breaker, the state (as stored) this process last read or wrote: what the
        # next swap expects to find.
        self._seen: dict[str, bytes | None] = {}
        # This process's updates of one breaker go one at a time: calls in flight
        # together would otherwise all expect the same state, and all but one swap
        # would fail and go round again (at 64 in flight: a tenth of the throughput).
        self._locks: dict[str, threading.Lock] = {}
        self._alocks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self._prefix = parsed.prefix
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._url = parsed.shown  # no credentials
        self._local = MemoryBreakerStore()
        self._outage = Outage(
            f"the Redis breaker store at {self._url}",
            policy=parsed.on_outage,
            retry_after=parsed.retry_after,
            meanwhile="breakers are local to this process",
        )

    @classmethod
    def from_url(cls, url: str | StoreUrl, *, clock: Clock | None = None) -> RedisBreakerStore:
        """`redis://[user:password@]host:port/db[?on_outage=fail&prefix=gg&retry_after=5]`
        (the quota store's options too, so both read one URL)."""
        parsed = url if isinstance(url, StoreUrl) else parse_store_url(url)
        return cls(
            parsed.client_url,
            prefix=parsed.prefix,
            on_outage=parsed.on_outage,
            retry_after=parsed.retry_after,
            socket_timeout=parsed.socket_timeout,
            connect_timeout=parsed.connect_timeout,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"RedisBreakerStore({self._url!r})"

    @property
    def degraded(self) -> bool:
        """True while Redis is considered down and the local store stands in."""
        return self._outage.down

    def _name(self, key: str) -> str:
        return f"{self._prefix}:breaker:{{{key}}}"

    def _use_redis(self) -> bool:
        return not self._outage.skipping(self._clock.monotonic())

    def _outage_began(self, exc: Exception) -> None:
        warning = self._outage.failed(exc, self._clock.monotonic())
        if warning is not None:
            _log.warning("%s", warning)

    def _recovered(self) -> None:
        back = self._outage.answered()
        if back is not None:
            _log.warning("%s", back)

    def load(self, key: str) -> BreakerSnapshot | None:
        if self._use_redis():
            try:
                raw = _raw(self._client.get(self._name(key)))
            except self._error as exc:
                self._outage_began(exc)
            else:
                self._recovered()
                self._seen[key] = raw
                return _parse(raw, self._url)
        return self._local.load(key)

    def update(self, key: str, change: Change) -> BreakerSnapshot:
        if self._use_redis():
            try:
                new = self._update(key, change)
            except self._error as exc:
                self._outage_began(exc)
            else:
                self._recovered()
                return new
        return self._local.update(key, change)

    def _update(self, key: str, change: Change) -> BreakerSnapshot:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            return self._swap(key, change)

    def _swap(self, key: str, change: Change) -> BreakerSnapshot:
        name = self._name(key)
        seen = self._seen
        expected = seen[key] if key in seen else _raw(self._client.get(name))
        for _ in range(_MAX_RACES):
            new = change(_parse(expected, self._url))
            raw = _dump(new).encode()
            args = _swap_args(name, expected, raw)
            try:
                answer = self._client.evalsha(_SWAP_SHA, 1, *args)
            except self._no_script:  # a restarted or flushed Redis forgot the script
                answer = self._client.eval(_SWAP, 1, *args)
            if answer[0] == 1:
                self._seen[key] = raw
                return new
            expected = _raw(answer[1])  # another process changed it: `change` that
        raise self._raced(key)

    # asyncio callers: redis-py's asyncio client for the running loop, so a call does
    # not wait for a worker thread (and one outage state serves both kinds of caller).
    async def aload(self, key: str) -> BreakerSnapshot | None:
        if self._use_redis():
            try:
                raw = _raw(await self._backend.async_client().get(self._name(key)))
            except self._error as exc:
                self._outage_began(exc)
            else:
                self._recovered()
                self._seen[key] = raw
                return _parse(raw, self._url)
        return self._local.load(key)

    async def aupdate(self, key: str, change: Change) -> BreakerSnapshot:
        if self._use_redis():
            try:
                new = await self._aupdate(key, change)
            except self._error as exc:
                self._outage_began(exc)
            else:
                self._recovered()
                return new
        return self._local.update(key, change)

    async def _aupdate(self, key: str, change: Change) -> BreakerSnapshot:
        loop = asyncio.get_running_loop()
        locks = self._alocks.get(loop)
        if locks is None:
            locks = self._alocks[loop] = {}
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        async with lock:
            return await self._aswap(key, change)

    async def _aswap(self, key: str, change: Change) -> BreakerSnapshot:
        client = self._backend.async_client()
        name = self._name(key)
        seen = self._seen
        expected = seen[key] if key in seen else _raw(await client.get(name))
        for _ in range(_MAX_RACES):
            new = change(_parse(expected, self._url))
            raw = _dump(new).encode()
            args = _swap_args(name, expected, raw)
            try:
                answer = await client.evalsha(_SWAP_SHA, 1, *args)
            except self._no_script:
                answer = await client.eval(_SWAP, 1, *args)
            if answer[0] == 1:
                self._seen[key] = raw
                return new
            expected = _raw(answer[1])
        raise self._raced(key)

    def _raced(self, key: str) -> StoreError:
        return StoreError(
            f"breaker {key!r} in {self._url} changed under us {_MAX_RACES} times in a row"
        )

    def close(self) -> None:
        self._backend.close()

    async def aclose(self) -> None:
        """`close`, awaiting the asyncio client of the running loop."""
        await self._backend.aclose()
