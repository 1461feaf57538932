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
"gemini_guard" logger; retried every `retry_after` clock seconds), since a breaker
store outage must not fail calls that a healthy model could serve; `?on_outage=fail`
raises `StoreError` instead. SQLite errors are `StoreError`s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.policies.breaker import BreakerSnapshot, BreakerStore, MemoryBreakerStore
from gemini_guard.redis_url import (
    CONNECT_TIMEOUT,
    SOCKET_TIMEOUT,
    public_redis_url,
    split_redis_url,
)
from gemini_guard.sqlite_file import OnCorrupt, SQLiteFile, on_corrupt_from_url, path_from_url

if TYPE_CHECKING:
    import redis

__all__ = ["RedisBreakerStore", "SQLiteBreakerStore", "open_breaker_store"]

_log = logging.getLogger("gemini_guard")
_EXAMPLES = "memory://, sqlite:///path/to/state.db, redis://localhost:6379/0"

Change = Callable[[BreakerSnapshot | None], BreakerSnapshot]


def open_breaker_store(url: str, *, clock: Clock | None = None) -> BreakerStore:
    """The breaker store at `url`; ConfigError for a URL no backend serves."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store={url!r} is not a store URL; use one of {_EXAMPLES}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        if url.rstrip("/") != "memory:":
            raise ConfigError(f"store={url!r}: a memory store takes no path; use 'memory://'")
        return MemoryBreakerStore()
    if scheme == "sqlite":
        return SQLiteBreakerStore.from_url(url)
    if scheme in {"redis", "rediss", "unix"}:
        return RedisBreakerStore.from_url(url, clock=clock)
    raise ConfigError(f"store={url!r}: unknown scheme {scheme!r}; use one of {_EXAMPLES}")


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
    def from_url(cls, url: str) -> SQLiteBreakerStore:
        """`sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite:///~/path`."""
        return cls(path_from_url(url, option="store"), on_corrupt=on_corrupt_from_url(url))

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


Outage = Literal["degrade", "fail"]
_TTL = 86_400  # seconds a breaker key outlives its last change
_MAX_RACES = 100  # WATCH conflicts in a row before giving up


class RedisBreakerStore:
    """Breaker snapshots in Redis, one JSON string per breaker, updated under WATCH."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gg",
        on_outage: Outage = "degrade",
        retry_after: float = 5.0,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        if on_outage not in ("degrade", "fail"):
            raise ConfigError(f"on_outage={on_outage!r}: use 'degrade' or 'fail'")
        if any(ch in prefix for ch in "{}"):
            raise ConfigError(f"prefix={prefix!r} must not contain braces (hash tags)")
        try:
            import redis
        except ImportError:  # pragma: no cover - redis is a declared extra
            raise ConfigError(
                "store=redis://... needs the redis package: pip install 'gemini-guard[redis]'"
            ) from None
        self._redis = redis
        self._prefix = prefix
        self._on_outage: Outage = on_outage
        self._retry_after = retry_after
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 1),
        )
        self._url = public_redis_url(url)  # no credentials
        self._local = MemoryBreakerStore()
        self._degraded_until: float | None = None  # monotonic clock time to try again
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> RedisBreakerStore:
        """`redis://[user:password@]host:port/db[?on_outage=fail&prefix=gg&retry_after=5]`
        (the quota store's options too, so both read one URL)."""
        rest, ours = split_redis_url(url)
        return cls(rest, clock=clock, **ours)

    def __repr__(self) -> str:
        return f"RedisBreakerStore({self._url!r})"

    @property
    def degraded(self) -> bool:
        """True while Redis is considered down and the local store stands in."""
        return self._degraded_until is not None

    def _name(self, key: str) -> str:
        return f"{self._prefix}:breaker:{{{key}}}"

    def _use_redis(self) -> bool:
        until = self._degraded_until
        return until is None or self._clock.monotonic() >= until

    def _outage(self, exc: Exception) -> None:
        if self._on_outage == "fail":
            raise StoreError(f"Redis breaker store {self._url} failed: {exc}") from exc
        with self._lock:
            first = self._degraded_until is None
            self._degraded_until = self._clock.monotonic() + self._retry_after
        if first:
            _log.warning(
                "Redis breaker store %s failed (%s); breakers are local to this process "
                "until it answers again",
                self._url,
                exc,
            )

    def _recovered(self) -> None:
        if self._degraded_until is not None:
            with self._lock:
                self._degraded_until = None
            _log.warning("Redis breaker store %s answers again", self._url)

    def load(self, key: str) -> BreakerSnapshot | None:
        if self._use_redis():
            try:
                raw = self._client.get(self._name(key))
            except self._redis.RedisError as exc:
                self._outage(exc)
            else:
                self._recovered()
                return _parse(raw, self._url)
        return self._local.load(key)

    def update(self, key: str, change: Change) -> BreakerSnapshot:
        if self._use_redis():
            try:
                new = self._update(key, change)
            except self._redis.RedisError as exc:
                self._outage(exc)
            else:
                self._recovered()
                return new
        return self._local.update(key, change)

    def _update(self, key: str, change: Change) -> BreakerSnapshot:
        name = self._name(key)
        watch_error = self._redis.WatchError
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
        self._client.close()
