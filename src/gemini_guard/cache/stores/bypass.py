"""The store a cache falls back to when its own cannot be opened: it holds nothing.

The cache promises that it never fails a call. A cache file that is not a database,
sits in a read-only directory or is locked by a broken process would otherwise stop
`Guard(...)` from starting; instead the cache is bypassed (every lookup a miss,
nothing kept), said once in a warning that names the file and the cause.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

__all__ = ["BypassedCacheStore"]


class BypassedCacheStore:
    """A cache store that keeps nothing; `reason` says why the real one is not used."""

    local = True

    def __init__(self, reason: str, *, max_entries: int = 10_000) -> None:
        self.reason = reason
        self.max_entries = max_entries
        # Scope names are still made with a secret: nothing is stored, but the names
        # the cache computes must never be a plain hash of a key.
        self._secret = secrets.token_bytes(32)

    def __repr__(self) -> str:
        return f"BypassedCacheStore({self.reason!r})"

    def get(self, key: str, *, now: float, credential: str | None = None) -> bytes | None:
        return None

    def put(self, key: str, value: bytes, *, now: float, ttl: float) -> None:
        return None

    def record_credential(self, credential: str, *, accepted: bool, now: float, ttl: float) -> None:
        return None

    def secret(self) -> bytes:
        return self._secret

    def delete(self, key: str) -> bool:
        return False

    def clear(self, prefix: str = "") -> int:
        return 0

    def count(self) -> int:
        return 0

    def add_stats(self, project: str, deltas: Mapping[str, float]) -> None:
        return None

    def read_stats(self) -> dict[str, dict[str, float]]:
        return {}

    def close(self) -> None:
        return None
