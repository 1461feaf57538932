"""The protocol every response-cache store keeps.

A store maps a key ("<project>/<sha256>") to an opaque value (the response's JSON as
bytes) with an expiry in wall-clock seconds (from the caller's `Clock`, never the
store's own, so a `FakeClock` drives expiry in tests) and a bound on the number of
entries: when a `put` goes over it, the least recently used entries are dropped.
A `get` of an expired entry removes it and answers None; a `get` that hits makes the
entry the most recently used.

A store also keeps the cache's counters per project (hits, misses, tokens and
dollars saved: the names of `CacheStats`), so a process that served no call (the
`gemini-guard quota` command) can read what the others saved. `add_stats` adds
deltas atomically; counters are never expired or evicted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["CacheStore"]


@runtime_checkable
class CacheStore(Protocol):
    max_entries: int
    # True when calls never block on I/O (the memory store): async callers use it
    # directly rather than from a worker thread.
    local: bool

    def get(self, key: str, *, now: float) -> bytes | None:
        """The live value of `key` at wall time `now` (marking it used), or None."""
        ...

    def put(self, key: str, value: bytes, *, now: float, ttl: float) -> None:
        """Store `value` under `key` until `now + ttl`, evicting LRU entries over the bound."""
        ...

    def delete(self, key: str) -> bool:
        """Drop `key`; True if it was there."""
        ...

    def clear(self, prefix: str = "") -> int:
        """Drop every entry whose key starts with `prefix` (all by default); how many."""
        ...

    def count(self) -> int:
        """Entries held (expired ones not yet dropped included)."""
        ...

    def add_stats(self, project: str, deltas: Mapping[str, float]) -> None:
        """Add `deltas` (counter name -> amount; ints stay ints) to `project`'s counters."""
        ...

    def read_stats(self) -> dict[str, dict[str, float]]:
        """Every project's counters: {project: {name: total}}."""
        ...

    def close(self) -> None: ...
