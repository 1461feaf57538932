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
not asked again for `retry_after` seconds of the store's clock (`?retry_after=5`, the
pause every Redis store takes: `stores.outage.Outage`): every operation meanwhile
raises `StoreSkipped` at once, without touching the network, so a frozen Redis costs
one call its timeouts rather than every call. The first operation after the pause
asks Redis again; its answer ends the outage (one warning on the "gemini_guard.cache"
logger), a failure starts another pause, quietly. A cache always carries on without
Redis: the URL's `on_outage` is the ledger's and the breakers'.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, TypeVar

from gemini_guard.cache.stores.base import StoreSkipped
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.stores.backend import RedisBackend
from gemini_guard.stores.outage import Outage
from gemini_guard.stores.url import (
    CONNECT_TIMEOUT,
    RETRY_AFTER,
    SOCKET_TIMEOUT,
    StoreUrl,
    parse_store_url,
    with_options,
)

__all__ = ["RedisCacheStore"]

_log = logging.getLogger("gemini_guard.cache")
T = TypeVar("T")


def _script(name: str) -> tuple[str, str]:
    source = (
        resources.files("gemini_guard.cache.stores").joinpath(f"lua/{name}.lua").read_text("utf-8")
    )
    return source, hashlib.sha1(source.encode()).hexdigest()


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
        retry_after: float = RETRY_AFTER,
        clock: Clock | None = None,
    ) -> None:
        """`clock`: what the `retry_after` pause is measured on (the cache's clock)."""
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        options = with_options(
            url,
            prefix=prefix,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retry_after=retry_after,
        )
        parsed = parse_store_url(options, option="cache")
        self._backend = RedisBackend(parsed, option="cache")
        self.max_entries = max_entries
        self.url = parsed.client_url
        self._public = parsed.shown  # for messages: no credentials
        self._prefix = f"{parsed.prefix}:cache"
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._outage = Outage(
            f"the Redis cache at {self._public}",
            retry_after=parsed.retry_after,
            meanwhile="lookups miss and answers are not kept",
            resumed="lookups and stores resume",
        )
        self._client = self._backend.client
        self._get = _script("get")
        self._put = _script("put")

    @classmethod
    def from_url(
        cls, url: str | StoreUrl, *, max_entries: int = 10_000, clock: Clock | None = None
    ) -> RedisCacheStore:
        """`redis://[user:password@]host:port/db[?prefix=gg&retry_after=5&socket_timeout=0.05]`."""
        # The quota store's URL may be reused here: its on_outage is not the cache's (a
        # cache always carries on without Redis).
        parsed = url if isinstance(url, StoreUrl) else parse_store_url(url, option="cache")
        return cls(
            parsed.client_url,
            max_entries=max_entries,
            prefix=parsed.prefix,
            socket_timeout=parsed.socket_timeout,
            connect_timeout=parsed.connect_timeout,
            retry_after=parsed.retry_after,
            clock=clock,
        )

    @property
    def degraded(self) -> bool:
        """True from a failure to reach Redis until it answers again."""
        return self._outage.down

    def __repr__(self) -> str:
        return f"RedisCacheStore({self._public!r}, max_entries={self.max_entries})"

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}:e:{key}", f"{self._prefix}:lru", f"{self._prefix}:seq"]

    # -- every Redis operation, through the outage pause -----------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """`action()` (Redis commands), unless Redis is paused; its errors as StoreErrors."""
        if self._outage.skipping(self._clock.monotonic()):
            raise StoreSkipped(self._outage.skipped())
        try:
            result = action()
        except self._backend.unreachable as exc:
            warning = self._outage.failed(exc, self._clock.monotonic())
            if warning is None:  # still down, or another thread saw it first: said once
                raise StoreSkipped(f"{self._outage.what} still does not answer: {exc}") from exc
            raise StoreError(warning) from exc
        except self._backend.error as exc:
            raise StoreError(f"the Redis cache at {self._public} failed: {exc}") from exc
        if self._outage.down:
            back = self._outage.answered()
            if back is not None:
                _log.warning("%s", back)
        return result

    def _run(self, script: tuple[str, str], keys: list[str], args: list[Any]) -> Any:
        source, sha = script
        no_script = self._backend.no_script
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
        self._backend.close()


def _number(raw: bytes) -> float:
    """A counter as Redis stores it: "12" (HINCRBY) or "0.0125" (HINCRBYFLOAT)."""
    text = raw.decode()
    try:
        return int(text)
    except ValueError:
        return float(text)
