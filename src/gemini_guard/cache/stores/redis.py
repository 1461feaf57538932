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
entries never asked for again do not stay in memory. A failure of Redis is a
`StoreError` (the response cache treats it as a miss and carries on).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.redis_url import CONNECT_TIMEOUT, SOCKET_TIMEOUT, split_redis_url

if TYPE_CHECKING:
    import redis

__all__ = ["RedisCacheStore"]


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
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        self._redis = _import_redis()
        self.max_entries = max_entries
        self.url = url
        self._prefix = f"{prefix}:cache"
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
    def from_url(cls, url: str, *, max_entries: int = 10_000) -> RedisCacheStore:
        """`redis://[user:password@]host:port/db[?prefix=gg&socket_timeout=0.05]`."""
        # The quota store's URL may be reused here: its other options are not ours.
        rest, options = split_redis_url(url)
        ours = {
            k: v for k, v in options.items() if k in ("prefix", "socket_timeout", "connect_timeout")
        }
        return cls(rest, max_entries=max_entries, **ours)

    def __repr__(self) -> str:
        host = urlsplit(self.url).hostname  # never the password
        return f"RedisCacheStore(host={host!r}, max_entries={self.max_entries})"

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}:e:{key}", f"{self._prefix}:lru", f"{self._prefix}:seq"]

    def _run(self, script: tuple[str, str], keys: list[str], args: list[Any]) -> Any:
        source, sha = script
        errors = self._redis.exceptions
        try:
            try:
                return self._client.evalsha(sha, len(keys), *keys, *args)
            except errors.NoScriptError:
                return self._client.eval(source, len(keys), *keys, *args)
        except errors.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc

    def get(self, key: str, *, now: float, credential: str | None = None) -> bytes | None:
        keys = self._keys(key)
        if credential is not None:
            keys.append(f"{self._prefix}:cred:{credential}")
        value = self._run(self._get, keys, [repr(now)])
        return bytes(value) if value is not None else None

    def record_credential(self, credential: str, *, accepted: bool, now: float, ttl: float) -> None:
        ttl_ms = max(1, math.ceil(ttl * 1000))
        value = repr(now + ttl) if accepted else "0"
        try:
            self._client.set(f"{self._prefix}:cred:{credential}", value, px=ttl_ms)
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc

    def secret(self) -> bytes:
        name = f"{self._prefix}:secret"
        try:
            pipe = self._client.pipeline()  # MULTI/EXEC: the first writer's secret wins
            pipe.set(name, os.urandom(32).hex(), nx=True)
            pipe.get(name)
            _, value = pipe.execute()
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc
        return bytes.fromhex(value.decode())

    def put(self, key: str, value: bytes, *, now: float, ttl: float) -> None:
        ttl_ms = max(1, math.ceil(ttl * 1000))
        self._run(self._put, self._keys(key), [value, repr(now + ttl), self.max_entries, ttl_ms])

    def delete(self, key: str) -> bool:
        entry, lru, _ = self._keys(key)
        try:
            pipe = self._client.pipeline()
            pipe.delete(entry)
            pipe.zrem(lru, entry)
            deleted, _ = pipe.execute()
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc
        return bool(deleted)

    def clear(self, prefix: str = "") -> int:
        lru = f"{self._prefix}:lru"
        start = f"{self._prefix}:e:{prefix}"
        try:
            doomed = [
                k
                for k in (m.decode() for m in self._client.zrange(lru, 0, -1))  # type: ignore[union-attr]
                if k.startswith(start)
            ]
            if doomed:
                self._client.delete(*doomed)
                self._client.zrem(lru, *doomed)
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc
        return len(doomed)

    def count(self) -> int:
        try:
            return int(self._client.zcard(f"{self._prefix}:lru"))
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc

    def add_stats(self, project: str, deltas: Mapping[str, float]) -> None:
        counters = f"{self._prefix}:stats:{project}"
        try:
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
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc

    def read_stats(self) -> dict[str, dict[str, float]]:
        try:
            projects = sorted(m.decode() for m in self._client.smembers(f"{self._prefix}:stats"))  # type: ignore[union-attr]
            pipe = self._client.pipeline(transaction=False)
            for project in projects:
                pipe.hgetall(f"{self._prefix}:stats:{project}")
            hashes = pipe.execute()
        except self._redis.exceptions.RedisError as exc:
            raise StoreError(f"the Redis cache failed: {exc}") from exc
        return {
            project: {name.decode(): _number(value) for name, value in counters.items()}
            for project, counters in zip(projects, hashes, strict=True)
        }

    def close(self) -> None:
        self._client.close()


def _number(raw: bytes) -> float:
    """A counter as Redis stores it: "12" (HINCRBY) or "0.0125" (HINCRBYFLOAT)."""
    text = raw.decode()
    try:
        return int(text)
    except ValueError:
        return float(text)
