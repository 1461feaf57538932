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
- Redis: optimistic `WATCH key` / `GET` / `MULTI` / `SET` / `EXEC`, run again when
  another client changed the key in between. `change` is pure, so running it twice
  is harmless. Keys are hash-tagged (`gg:breaker:{project/model}`) for Redis Cluster
  and expire a day after their last change (a breaker idle that long is closed in
  all but name).

A Redis that stops answering degrades to a local in-memory store (a warning on the
"gemini_guard" logger; retried every `retry_after` clock seconds: `stores.outage`),
since a breaker store outage must not fail calls that a healthy model could serve;
`?on_outage=fail` raises `StoreError` instead. SQLite errors are `StoreError`s.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
_MAX_RACES = 100  # WATCH conflicts in a row before giving up


class RedisBreakerStore:
    """Breaker snapshots in Redis, one JSON string per breaker, updated under WATCH."""

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
        self._watch_error: type[Exception] = self._backend.redis.WatchError
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
                raw = self._client.get(self._name(key))
            except self._error as exc:
                self._outage_began(exc)
            else:
                self._recovered()
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
        name = self._name(key)
        watch_error = self._watch_error
        with self._client.pipeline() as pipe:
            for _ in range(_MAX_RACES):
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    new = change(_parse(pipe.get(name), self._url))
                    pipe.multi()
                    pipe.set(name, _dump(new), ex=_TTL)
                    pipe.execute()
                    return new
                except watch_error:
                    continue  # another client changed it: read again
        raise StoreError(
            f"breaker {key!r} in {self._url} changed under us {_MAX_RACES} times in a row"
        )

    # The sync client in a worker thread: async callers do not block their loop,
    # and one connection pool and one outage state serve both kinds of caller.
    async def aload(self, key: str) -> BreakerSnapshot | None:
        return await asyncio.to_thread(self.load, key)

    async def aupdate(self, key: str, change: Change) -> BreakerSnapshot:
        return await asyncio.to_thread(self.update, key, change)

    def close(self) -> None:
        self._backend.close()
