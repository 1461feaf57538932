"""The protocol every response-cache store keeps.

A store maps a key ("<scope>/<sha256>", the scope an HMAC digest: see
`gemini_guard.cache.scope`) to an opaque value (the response's JSON as
bytes) with an expiry in wall-clock seconds (from the caller's `Clock`, never the
store's own, so a `FakeClock` drives expiry in tests) and a bound on the number of
entries: when a `put` goes over it, the least recently used entries are dropped.
A `get` of an expired entry removes it and answers None; a `get` that hits makes the
entry the most recently used.

A store also records which credentials the API accepted (`record_credential`, by
their HMAC digest, never the key): a `get` given a credential answers only while that
credential's acceptance lasts, in the same read as the entry, so one process's news
that a key was refused reaches every other process's next lookup. The HMAC secret
lives in the store too (`secret`): made once at random, read by every user.

A store also keeps the cache's counters per label (hits, misses, tokens and
dollars saved: the names of `CacheStats`), so a process that served no call (the
`gemini-guard quota` command) can read what the others saved. `add_stats` adds
deltas atomically; counters are never expired or evicted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from gemini_guard.errors import StoreError

__all__ = ["CacheStore", "StoreSkipped"]


class StoreSkipped(StoreError):
    """The store was not asked: it stopped answering moments ago and is left alone for
    a while (Redis: `retry_after` seconds). The failure that started the pause was a
    plain `StoreError`; these, until the store answers again, are not worth a warning."""


@runtime_checkable
class CacheStore(Protocol):
    max_entries: int
    # True when calls never block on I/O (the memory store): async callers use it
    # directly rather than from a worker thread.
    local: bool

    def get(self, key: str, *, now: float, credential: str | None = None) -> bytes | None:
        """The live value of `key` at wall time `now` (marking it used), or None.

        With `credential` (a credential digest), None also unless that credential is
        recorded as accepted until after `now`."""
        ...

    def put(self, key: str, value: bytes, *, now: float, ttl: float) -> None:
        """Store `value` under `key` until `now + ttl`, evicting LRU entries over the bound."""
        ...

    def record_credential(self, credential: str, *, accepted: bool, now: float, ttl: float) -> None:
        """Record that the API accepted (or refused) `credential` (a digest) at `now`;
        the record lasts `ttl` seconds, after which the credential is unknown again."""
        ...

    def secret(self) -> bytes:
        """The store's HMAC secret (made at random on first use, then always the same)."""
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
        """Add `deltas` (counter name -> amount; ints stay ints) to the counters of
        `project` (a label: the response cache writes a fingerprint, never a name)."""
        ...

    def read_stats(self) -> dict[str, dict[str, float]]:
        """Every label's counters: {label: {name: total}}."""
        ...

    def close(self) -> None: ...
