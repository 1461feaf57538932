"""Counters of what the cache saved, and the prices that turn tokens into dollars."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gemini_guard.tiers import model_spec

__all__ = ["CacheStats", "Counters", "Savings", "SharedCounters", "savings_of"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters (`ResponseCache.stats()`)."""

    hits: int = 0  # answered from a stored entry
    misses: int = 0  # cacheable, not found: sent upstream
    coalesced: int = 0  # shared a concurrent identical call
    stored: int = 0
    skipped: int = 0  # not cacheable (policy, or no canonical form)
    store_errors: int = 0  # store failures, treated as misses
    tokens_saved: int = 0
    dollars_saved: float = 0.0
    context_created: int = 0
    context_refreshed: int = 0
    context_deleted: int = 0
    context_uses: int = 0  # requests sent with a cachedContents entry
    context_tokens: int = 0  # input tokens billed at the cached price instead
    context_dollars_saved: float = 0.0

    @property
    def upstream_calls_saved(self) -> int:
        return self.hits + self.coalesced

    @property
    def hit_ratio(self) -> float:
        """Share of cacheable calls that did not go upstream."""
        total = self.hits + self.coalesced + self.misses
        return (self.hits + self.coalesced) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["hit_ratio"] = self.hit_ratio
        return out

    @classmethod
    def from_counts(cls, counts: Mapping[str, float]) -> CacheStats:
        """The stats of counters read back from a store (`CacheStore.read_stats`).

        Names this version does not know (written by a newer one) are ignored, and
        each value takes its field's type (a store may hand back 3.0 for 3).
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in counts:
                kind = float if isinstance(f.default, float) else int
                values[f.name] = kind(counts[f.name])
        return cls(**values)


class Counters:
    """The mutable side of `CacheStats`, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {f.name: f.default for f in fields(CacheStats)}

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def snapshot(self) -> CacheStats:
        with self._lock:
            return CacheStats(**self._values)


class SharedCounters(Counters):
    """`Counters` that also keep what has not yet been written to a shared store.

    Counting stays an in-memory add; `take_pending` hands the accumulated deltas to
    whoever writes them (`ResponseCache`, at most once per interval), so a hit costs
    no extra round trip to the store.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, float] = {}

    def add(self, **deltas: float) -> None:
        with self._lock:
            values, pending = self._values, self._pending
            for name, delta in deltas.items():
                values[name] += delta
                pending[name] = pending.get(name, 0) + delta

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def take_pending(self) -> dict[str, float]:
        """The deltas counted since the last call (zeros left out); resets them."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return {name: delta for name, delta in pending.items() if delta}

    def restore_pending(self, deltas: Mapping[str, float]) -> None:
        """Put back deltas a failed write did not store, to try again later."""
        with self._lock:
            for name, delta in deltas.items():
                self._pending[name] = self._pending.get(name, 0) + delta


@dataclass(frozen=True, slots=True)
class Savings:
    tokens: int
    dollars: float


def _count(usage: Any, name: str) -> int:
    value = getattr(usage, name, None)
    return value if isinstance(value, int) else 0


def savings_of(model: str, usage: Any) -> Savings:
    """What a call with this `usage_metadata` cost, i.e. what not making it saves.

    Input tokens served from a context cache are priced at `cached_input`.
    """
    prompt = _count(usage, "prompt_token_count")
    cached = min(_count(usage, "cached_content_token_count"), prompt)
    output = _count(usage, "candidates_token_count") + _count(usage, "thoughts_token_count")
    spec = model_spec(model)
    if spec is None or spec.price is None:
        return Savings(prompt + output, 0.0)
    return Savings(prompt + output, spec.price.cost(prompt, output, cached_tokens=cached))


def context_savings(model: str, cached_tokens: int) -> float:
    """Dollars saved by billing `cached_tokens` at the cached price, not the input price."""
    spec = model_spec(model)
    if spec is None or spec.price is None:
        return 0.0
    return cached_tokens * (spec.price.input - spec.price.cached_input) / 1e6
