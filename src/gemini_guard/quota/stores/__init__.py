"""Quota stores, chosen by URL; each backend is imported only when asked for.

- `memory://`            one process (threads and asyncio tasks)
- `sqlite:///rel/path`   processes on one host (`sqlite:////abs/path`, `~` expanded)
- `redis://host:port/db` many hosts (`rediss://` for TLS); needs `gemini-guard[redis]`
"""

from __future__ import annotations

from collections.abc import Callable

from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, QuotaStore, Reservation
from gemini_guard.stores.url import parse_store_url

__all__ = ["KeyUsage", "QuotaKey", "QuotaStore", "Reservation", "open_store"]


def open_store(url: str, *, on_event: Callable[[object], None] | None = None) -> QuotaStore:
    """The quota store at `url`. Raises ConfigError for a URL no backend serves."""
    parsed = parse_store_url(url)
    if parsed.kind == "memory":
        from gemini_guard.quota.stores.memory import MemoryStore

        return MemoryStore()
    if parsed.kind == "sqlite":
        from gemini_guard.quota.stores.sqlite import SQLiteStore

        return SQLiteStore.from_url(parsed)
    from gemini_guard.quota.stores.redis import RedisStore

    return RedisStore.from_url(parsed, on_event=on_event)
