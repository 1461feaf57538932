"""Telemetry events of the response cache and of context caching.

    Event
    ├── CacheHit            a call was answered from the cache (or shared a leader's call)
    ├── CacheStored         a response was stored
    └── ContextCacheChanged a `cachedContents` entry was created, refreshed, used or deleted

`key` is the first 16 hex digits of the entry's sha256: enough to tell entries apart
in a log, and a function of the request alone (never of the API key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gemini_guard.telemetry.events import Event

__all__ = ["CacheHit", "CacheStored", "ContextCacheChanged"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheHit(Event):
    kind: ClassVar[str] = "cache_hit"

    key: str
    coalesced: bool  # True: shared a concurrent identical call rather than a stored entry
    stream: bool
    tokens_saved: int  # input + output tokens the call did not spend
    dollars_saved: float  # at the model's standard prices (0 for unknown models)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStored(Event):
    kind: ClassVar[str] = "cache_stored"

    key: str
    stream: bool
    ttl: float  # seconds
    size: int  # bytes stored


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextCacheChanged(Event):
    kind: ClassVar[str] = "context_cache"

    action: str  # "created", "refreshed", "used", "deleted", "failed"
    name: str  # "cachedContents/..." ("" when creation failed)
    tokens: int  # tokens held by the cached prefix
    expire_at: float | None = None  # wall seconds
    dollars_saved: float = 0.0  # for "used": cached tokens at cached_input vs input price
    detail: str = ""
