"""Response cache: answer repeated requests without spending quota.

    guard = Guard(client=client, cache="memory://")            # or sqlite:///…, redis://…
    guard = Guard(client=client, cache=CacheConfig(url="sqlite:///cache.db", ttl=600))
    guard.cache.stats()                                         # hits, misses, saved $

- keys: sha256 of the canonical request (model, contents, system instruction, tools,
  generation config), namespaced per scope; never the API key (`keys`);
- scopes: an answer is served only within its scope (by default the Google Cloud
  project, else the API key) and only to keys the API has accepted (`scope`);
- policy: temperature-0 calls by default, or calls marked with the label
  `gemini-guard-cache` / `cache_options(...)` (`policy`); TTL; LRU size bound;
- concurrent identical calls share one upstream call (`coalescing`);
- long repeated prefixes go to a `cachedContents` entry (`context`);
- `CacheHit`, `CacheStored`, `ContextCacheChanged` events and `CacheStats`.
"""

from gemini_guard.cache.coalescing import AsyncCoalescer, Coalescer
from gemini_guard.cache.context import ContextCaching, ContextPlanner
from gemini_guard.cache.events import CacheHit, CacheStored, ContextCacheChanged
from gemini_guard.cache.keys import canonical_request, request_key
from gemini_guard.cache.policy import CACHE_LABEL, cache_options
from gemini_guard.cache.response import ResponseCache
from gemini_guard.cache.scope import CacheScope
from gemini_guard.cache.settings import CacheConfig
from gemini_guard.cache.stats import CacheStats
from gemini_guard.cache.stores import CacheStore, open_cache_store

__all__ = [
    "CACHE_LABEL",
    "AsyncCoalescer",
    "CacheConfig",
    "CacheHit",
    "CacheScope",
    "CacheStats",
    "CacheStore",
    "CacheStored",
    "Coalescer",
    "ContextCacheChanged",
    "ContextCaching",
    "ContextPlanner",
    "ResponseCache",
    "cache_options",
    "canonical_request",
    "open_cache_store",
    "request_key",
]
