"""Counters of what the cache saved, and the prices that turn tokens into dollars."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from gemini_guard.tiers import model_spec

__all__ = ["CacheStats", "Counters", "Savings", "savings_of"]


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
    if spec is None:
        return Savings(prompt + output, 0.0)
    price = spec.price
    dollars = (
        (prompt - cached) * price.input + cached * price.cached_input + output * price.output
    ) / 1e6
    return Savings(prompt + output, dollars)


def context_savings(model: str, cached_tokens: int) -> float:
    """Dollars saved by billing `cached_tokens` at the cached price, not the input price."""
    spec = model_spec(model)
    if spec is None:
        return 0.0
    return cached_tokens * (spec.price.input - spec.price.cached_input) / 1e6
