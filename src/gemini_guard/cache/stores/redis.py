"""`redis://host:port/db`: cached responses in Redis, shared by many hosts.

Keys (prefix `gg` by default, `?prefix=` to change it):
- `<prefix>:cache:e:<key>`  a hash: `v` the value, `x` the expiry (wall seconds);
- `<prefix>:cache:lru`      a sorted set of entry keys scored by last use;
- `<prefix>:cache:seq`      the counter that orders uses;
- `<prefix>:cache:cred:<digest>` a credential's record: the wall time its acceptance
  lasts until, or "0" for a refusal (PEXPIRE'd when the record ends);
- `<prefix>:cache:secret`   the HMAC secret (SET NX by whichever process asks first);
- `<prefix>:cache:stats:<label>` a hash of the label's counters (HINCRBY for
  counts, HINCRBYFLOAT for dollars), and `<prefix>:cache:stats` the set of labels
  that have one (so reading them needs no SCAN).
`get` and `put` are Lua scripts (package resources), so the touch of a hit, its
check of the credential, and the count-then-evict of a put are atomic. Expiry is read
against the caller's clock; each entry also gets a Redis PEXPIRE of its TTL, so
entries never asked for again do not stay in memory.

A failure of Redis is a `StoreError` (the response cache treats it as a miss and
carries on). When Redis does not answer (refused, timed out: dead or frozen), it is
not asked again for `retry_after` seconds of the store's clock (`?retry_after=5`, as
for the other Redis stores): every operation meanwhile raises `StoreSkipped` at once,
without touching the network, so a frozen Redis costs one call its timeouts rather
than every call. The first operation after the pause asks Redis again; its answer
ends the outage (one warning on the "gemini_guard.cache" logger), a failure starts
another pause, quietly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from gemini_guard.cache.stores.base import StoreSkipped
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.redis_url import (
    CONNECT_TIMEOUT,
    SOCKET_TIMEOUT,
    public_redis_url,
    split_redis_url,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisCacheStore"]

_log = logging.getLogger("gemini_guard.cache")
T = TypeVar("T")


def _script(name: str) -> tuple[str, str]:
    source = (
        resources.files("gemini_guard.cache.stores").joinpath(f"lua/{name}.lua").read_text("utf-8")
    )
    return source, hashlib.sha1(source.encode()).hexdigest()


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ConfigError(
            "a redis:// cache needs the redis client: pip install 'gemini-guard[redis]'"
        ) from exc
    return redis


class RedisCacheStore:
    """Entries in Redis; see the module docstring for keys and scripts."""

    local = False

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        max_entries: int = 10_000,
        prefix: str = "gg",
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        retry_after: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        """`clock`: what the `retry_after` pause is measured on (the cache's clock)."""
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        self._redis = _import_redis()
        errors = self._redis.exceptions
        # Redis did not answer at all: asking again at once would only wait again.
        self._unreachable: tuple[type[Exception], ...] = (
            errors.ConnectionError,
            errors.TimeoutError,
            OSError,
        )
        self.max_entries = max_entries
        self.url = url
        self._public = public_redis_url(url)  # for messages: no credentials
        self._prefix = f"{prefix}:cache"
        self._retry_after = retry_after
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._down_until: float | None = None  # clock.monotonic() to ask Redis again
        self._outage = threading.Lock()
        # One quick retry on a fresh connection, no backoff: redis-py's default retries
        # with backoff would hold a call for seconds on a frozen server.
        self._client: redis.Redis = self._redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 1),
        )
        self._get = _script("get")
        self._put = _script("put")

    @classmethod
    def from_url(
        cls, url: str, *, max_entries: int = 10_000, clock: Clock | None = None
    ) -> RedisCacheStore:
        """`redis://[user:password@]host:port/db[?prefix=gg&retry_after=5&socket_timeout=0.05]`."""
        # The quota store's URL may be reused here: its other options (on_outage: a
        # cache always carries on without Redis) are not ours.
        rest, options = split_redis_url(url)
        ours = {k: v for k, v in options.items() if k in _OPTIONS}
        return cls(rest, max_entries=max_entries, clock=clock, **ours)

    @property
    def degraded(self) -> bool:
        """True from a failure to reach Redis until it answers again."""
        return self._down_until is not None

    def __repr__(self) -> str:
        host = urlsplit(self.url).hostname  # never the password
        return f"RedisCacheStore(host={host!r}, max_entries={self.max_entries})"

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}:e:{key}", f"{self._prefix}:lru", f"{self._prefix}:seq"]

    # -- every Redis operation, through the outage pause -----------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """`action()` (Redis commands), unless Redis is paused; its errors as StoreErrors."""
        until = self._down_until
        if until is not None and self._clock.monotonic() < until:
            raise StoreSkipped(
                f"the Redis cache at {self._public} is not asked for {self._retry_after:g} s "
                "after failing to answer"
            )
        try:
            result = action()
        except self._unreachable as exc:
            raise self._unanswered(exc) from exc
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache at {self._public} failed: {exc}") from exc
        if self._down_until is not None:
            self._answered()
        return result

    def _unanswered(self, exc: Exception) -> StoreError:
        with self._outage:
            first = self._down_until is None
            self._down_until = self._clock.monotonic() + self._retry_after
        if not first:  # still down, or another thread saw it first: said once already
            return StoreSkipped(f"the Redis cache at {self._public} still does not answer: {exc}")
        return StoreError(
            f"the Redis cache at {self._public} does not answer ({exc}); it is not asked "
            f"again for {self._retry_after:g} s: lookups miss and answers are not kept "
            "until it answers"
        )

    def _answered(self) -> None:
        with self._outage:
            if self._down_until is None:
                return
            self._down_until = None
        _log.warning("the Redis cache at %s answers again: lookups and stores resume", self._public)

    def _run(self, script: tuple[str, str], keys: list[str], args: list[Any]) -> Any:
        source, sha = script
        no_script = self._redis.exceptions.NoScriptError
        client = self._client

        def run() -> Any:
            try:
                return client.evalsha(sha, len(keys), *keys, *args)
            except no_script:
                return client.eval(source, len(keys), *keys, *args)

        return self._call(run)

    def get(self, key: str, *, now: float, credential: str | None = None) -> bytes | None:
        keys = self._keys(key)
        if credential is not None:
            keys.append(f"{self._prefix}:cred:{credential}")
        value = self._run(self._get, keys, [repr(now)])
        return bytes(value) if value is not None else None

    def record_credential(self, credential: str, *, accepted: bool, now: float, ttl: float) -> None:
        ttl_ms = max(1, math.ceil(ttl * 1000))
        value = repr(now + ttl) if accepted else "0"
        self._call(lambda: self._client.set(f"{self._prefix}:cred:{credential}", value, px=ttl_ms))

    def secret(self) -> bytes:
        name = f"{self._prefix}:secret"

        def read() -> Any:
            pipe = self._client.pipeline()  # MULTI/EXEC: the first writer's secret wins
            pipe.set(name, os.urandom(32).hex(), nx=True)
            pipe.get(name)
            _, value = pipe.execute()
            return value

        return bytes.fromhex(self._call(read).decode())

    def put(self, key: str, value: bytes, *, now: float, ttl: float) -> None:
        ttl_ms = max(1, math.ceil(ttl * 1000))
        self._run(self._put, self._keys(key), [value, repr(now + ttl), self.max_entries, ttl_ms])

    def delete(self, key: str) -> bool:
        entry, lru, _ = self._keys(key)

        def delete() -> Any:
            pipe = self._client.pipeline()
            pipe.delete(entry)
            pipe.zrem(lru, entry)
            deleted, _ = pipe.execute()
            return deleted

        return bool(self._call(delete))

    def clear(self, prefix: str = "") -> int:
        lru = f"{self._prefix}:lru"
        start = f"{self._prefix}:e:{prefix}"

        def clear() -> int:
            doomed = [
                k
                for k in (m.decode() for m in self._client.zrange(lru, 0, -1))  # type: ignore[union-attr]
                if k.startswith(start)
            ]
            if doomed:
                self._client.delete(*doomed)
                self._client.zrem(lru, *doomed)
            return len(doomed)

        return self._call(clear)

    def count(self) -> int:
        return int(self._call(lambda: self._client.zcard(f"{self._prefix}:lru")))

    def add_stats(self, project: str, deltas: Mapping[str, float]) -> None:
        counters = f"{self._prefix}:stats:{project}"

        def add() -> None:
            pipe = self._client.pipeline()  # MULTI/EXEC: all of a batch or none
            for name, delta in deltas.items():
                if not delta:
                    continue
                if isinstance(delta, int):
                    pipe.hincrby(counters, name, delta)
                else:
                    pipe.hincrbyfloat(counters, name, delta)
            pipe.sadd(f"{self._prefix}:stats", project)
            pipe.execute()

        self._call(add)

    def read_stats(self) -> dict[str, dict[str, float]]:
        def read() -> tuple[list[str], list[Any]]:
            projects = sorted(m.decode() for m in self._client.smembers(f"{self._prefix}:stats"))  # type: ignore[union-attr]
            pipe = self._client.pipeline(transaction=False)
            for project in projects:
                pipe.hgetall(f"{self._prefix}:stats:{project}")
            return projects, pipe.execute()

        projects, hashes = self._call(read)
        return {
            project: {name.decode(): _number(value) for name, value in counters.items()}
            for project, counters in zip(projects, hashes, strict=True)
        }

    def close(self) -> None:
        self._client.close()


_OPTIONS = ("prefix", "socket_timeout", "connect_timeout", "retry_after")


def _number(raw: bytes) -> float:
    """A counter as Redis stores it: "12" (HINCRBY) or "0.0125" (HINCRBYFLOAT)."""
    text = raw.decode()
    try:
        return int(text)
    except ValueError:
        return float(text)
