"""Response-cache stores, chosen by URL; each backend is imported only when asked for.

- `memory://`            one process (an LRU dict)
- `sqlite:///rel/path`   processes on one host (`sqlite:////abs/path`, `~` expanded)
- `redis://host:port/db` many hosts; needs `gemini-guard[redis]`
"""

from __future__ import annotations

import logging

from gemini_guard.cache.stores.base import CacheStore, StoreSkipped
from gemini_guard.clock import Clock
from gemini_guard.errors import StoreError
from gemini_guard.stores.url import parse_store_url

__all__ = ["CacheStore", "StoreSkipped", "open_cache_store"]

_log = logging.getLogger("gemini_guard.cache")


def open_cache_store(
    url: str, *, max_entries: int = 10_000, clock: Clock | None = None
) -> CacheStore:
    """The cache store at `url`, holding at most `max_entries` (LRU beyond). `clock`
    times a Redis store's pause after Redis stops answering (`?retry_after=`)."""
    parsed = parse_store_url(url, option="cache")
    if parsed.kind == "memory":
        from gemini_guard.cache.stores.memory import MemoryCacheStore

        return MemoryCacheStore(max_entries=max_entries)
    if parsed.kind == "sqlite":
        from gemini_guard.cache.stores.sqlite import SQLiteCacheStore

        try:
            return SQLiteCacheStore.from_url(parsed, max_entries=max_entries)
        except StoreError as exc:
            # A cache never fails a call, nor the start of the Guard: go on without it.
            from gemini_guard.cache.stores.bypass import BypassedCacheStore

            _log.warning("response cache bypassed (calls go on, uncached): %s", exc)
            return BypassedCacheStore(str(exc), max_entries=max_entries)
    from gemini_guard.cache.stores.redis import RedisCacheStore

    return RedisCacheStore.from_url(parsed, max_entries=max_entries, clock=clock)
