"""`memory://`: an LRU dict with expiry, for one process (threads and tasks).

Values are kept as the objects given, never serialised: the response cache puts its
decoded entries here (`MemoryCacheStore[Entry]`), so a hit neither parses JSON nor
rebuilds the response's structure. Used through `CacheStore`, it holds bytes.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Generic, TypeVar

from gemini_guard.errors import ConfigError

__all__ = ["MemoryCacheStore"]

V = TypeVar("V")


class MemoryCacheStore(Generic[V]):
    """Entries in an `OrderedDict` (oldest use first) under one lock."""

    local = True

    def __init__(self, *, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._stats: dict[str, dict[str, float]] = {}
        # credential digest -> (accepted, until): the API's last word on it.
        self._credentials: dict[str, tuple[bool, float]] = {}
        self._secret = os.urandom(32)

    def get(self, key: str, *, now: float, credential: str | None = None) -> V | None:
        with self._lock:
            if credential is not None and not self._accepted(credential, now):
                return None
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= now:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, value: V, *, now: float, ttl: float) -> None:
        with self._lock:
            self._items[key] = (now + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def _accepted(self, credential: str, now: float) -> bool:
        accepted, until = self._credentials.get(credential, (False, 0.0))
        return accepted and until > now

    def record_credential(self, credential: str, *, accepted: bool, now: float, ttl: float) -> None:
        with self._lock:
            self._credentials[credential] = (accepted, now + ttl)
            if len(self._credentials) > self.max_entries:
                # Expired records say nothing more than no record at all.
                for name, (_, until) in list(self._credentials.items()):
                    if until <= now:
                        del self._credentials[name]

    def secret(self) -> bytes:
        return self._secret

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._items.pop(key, None) is not None

    def clear(self, prefix: str = "") -> int:
        with self._lock:
            doomed = [k for k in self._items if k.startswith(prefix)]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def count(self) -> int:
        return len(self._items)

    def add_stats(self, project: str, deltas: Mapping[str, float]) -> None:
        with self._lock:
            counters = self._stats.setdefault(project, {})
            for name, delta in deltas.items():
                counters[name] = counters.get(name, 0) + delta

    def read_stats(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {project: dict(counters) for project, counters in self._stats.items()}

    def close(self) -> None:
        with self._lock:
            self._items.clear()

    def __repr__(self) -> str:
        return f"MemoryCacheStore(max_entries={self.max_entries})"
