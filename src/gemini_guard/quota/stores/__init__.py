"""Quota stores, chosen by URL; each backend is imported only when asked for.

- `memory://`            one process (threads and asyncio tasks)
- `sqlite:///rel/path`   processes on one host (`sqlite:////abs/path`, `~` expanded)
- `redis://host:port/db` many hosts (`rediss://` for TLS); needs `gemini-guard[redis]`
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from gemini_guard.errors import ConfigError
from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, QuotaStore, Reservation

__all__ = ["KeyUsage", "QuotaKey", "QuotaStore", "Reservation", "open_store"]

_EXAMPLES = "memory://, sqlite:///path/to/state.db, redis://localhost:6379/0"


def open_store(url: str, *, on_event: Callable[[object], None] | None = None) -> QuotaStore:
    """The quota store at `url`. Raises ConfigError for a URL no backend serves."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store={url!r} is not a store URL; use one of {_EXAMPLES}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        if url.rstrip("/") != "memory:":
            raise ConfigError(f"store={url!r}: a memory store takes no path; use 'memory://'")
        from gemini_guard.quota.stores.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from gemini_guard.quota.stores.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in {"redis", "rediss", "unix"}:
        from gemini_guard.quota.stores.redis import RedisStore

        return RedisStore.from_url(url, on_event=on_event)
    raise ConfigError(f"store={url!r}: unknown scheme {scheme!r}; use one of {_EXAMPLES}")
