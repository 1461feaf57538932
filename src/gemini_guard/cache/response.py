"""`ResponseCache`: the store, the policy, the counters and the events, in one place.

The Guard calls it around each request (see `gemini_guard.cache.guarded`):
`plan` decides whether a call is cached and under which key, `lookup` answers a hit,
`store` keeps a completed answer. A failing store never fails a call: its error is
logged, counted (`store_errors`) and the call goes on as a miss.

Answers travel as `Entry`s, decoded once: a `memory://` store keeps the entry object
itself, the others its bytes (decoded again on each hit, as they come from another
process's writes).

With a shared store (SQLite, Redis) the counters are also added to the store's, per
project, for `gemini-guard quota --cache` to show. Counting stays in memory; the
deltas ride along with the next store access once `stats_interval` seconds have
passed since the last write, and on `close()` / `flush_stats()`, so a hit costs no
extra round trip. A memory store is one process's own: its counters are not copied.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.genai import types

from gemini_guard.cache.coalescing import AsyncCoalescer, Coalescer
from gemini_guard.cache.context import ContextCaching, ContextPlanner
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.events import CacheHit, CacheStored
from gemini_guard.cache.keys import request_key
from gemini_guard.cache.policy import decide, split_label
from gemini_guard.cache.stats import CacheStats, Counters, SharedCounters
from gemini_guard.cache.stores import CacheStore, open_cache_store
from gemini_guard.cache.stores.memory import MemoryCacheStore
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.config import CacheConfig
from gemini_guard.errors import StoreError
from gemini_guard.telemetry import Telemetry

if TYPE_CHECKING:
    from google import genai

__all__ = ["Plan", "ResponseCache"]

_log = logging.getLogger("gemini_guard.cache")

Response = types.GenerateContentResponse


@dataclass(frozen=True, slots=True)
class Plan:
    """How one call meets the cache: its config (label removed), key and TTL.
    `key` is None when the call is not cached."""

    config: Any
    key: str | None
    ttl: float


def storable(response: Response) -> bool:
    """An answer worth keeping: it has candidates and the prompt was not blocked."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return False
    return bool(response.candidates)


class ResponseCache:
    """Answers repeated requests from a store; see `gemini_guard.cache`."""

    def __init__(
        self,
        config: CacheConfig | str = "memory://",
        *,
        project: str = "default",
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
        store: CacheStore | None = None,
        client: genai.Client | None = None,
        stats_interval: float = 1.0,
    ) -> None:
        self.config = config if isinstance(config, CacheConfig) else CacheConfig(url=config)
        self.project = project
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.store: CacheStore = (
            store
            if store is not None
            else open_cache_store(self.config.url, max_entries=self.config.max_entries)
        )
        # A memory store holds decoded entries, not bytes.
        self._entries: MemoryCacheStore[Any] | None = (
            self.store if isinstance(self.store, MemoryCacheStore) else None
        )
        self.counters: Counters
        # Shared stores get the counters too (see the module docstring).
        self._shared: SharedCounters | None = None
        if self.store.local:
            self.counters = Counters()
        else:
            self.counters = self._shared = SharedCounters()
            # Counts not yet written when the cache is dropped or the process exits.
            self._at_exit = weakref.finalize(
                self, _write_pending, self._shared, self.store, project
            )
        self.stats_interval = stats_interval
        self._stats_written_at = float("-inf")
        self.coalescer = Coalescer()
        self.async_coalescer = AsyncCoalescer()
        self.context: ContextCaching | None = None
        if self.config.context and client is not None:
            self.context = ContextCaching(
                client,
                planner=ContextPlanner(
                    min_tokens=self.config.context_min_tokens,
                    min_repeats=self.config.context_min_repeats,
                    ttl=self.config.context_ttl,
                    refresh=self.config.context_refresh,
                ),
                project=project,
                clock=self.clock,
                telemetry=self.telemetry,
                counters=self.counters,
            )

    def __repr__(self) -> str:
        return f"ResponseCache({self.store!r}, project={self.project!r})"

    def stats(self) -> CacheStats:
        """hits, misses, coalesced calls, tokens and dollars saved so far."""
        return self.counters.snapshot()

    def flush_stats(self) -> bool:
        """Add the counts not yet written to the store's counters now; False if it failed."""
        if self._shared is None:
            return True
        self._stats_written_at = self.clock.monotonic()
        return _write_pending(self._shared, self.store, self.project)

    def _stats_due(self) -> None:
        shared = self._shared
        if (
            shared is not None
            and shared.has_pending
            and self.clock.monotonic() - self._stats_written_at >= self.stats_interval
        ):
            self.flush_stats()

    # -- decisions -----------------------------------------------------------------

    def plan(self, model: str, contents: Any, config: Any, *, stream: bool = False) -> Plan:
        config, label = split_label(config)
        ttl = decide(config, label, policy=self.config.policy, default_ttl=self.config.ttl)
        if ttl is None or (stream and not self.config.streams):
            self.counters.add(skipped=1)
            return Plan(config, None, 0.0)
        key = request_key(project=self.project, model=model, contents=contents, config=config)
        if key is None:
            self.counters.add(skipped=1)
        return Plan(config, key, ttl)

    # -- the store, never failing a call -------------------------------------------

    def _get(self, key: str) -> Entry | None:
        entries = self._entries
        try:
            if entries is not None:
                found = entries.get(key, now=self.clock.time())
                # Bytes when the store is shared with code that puts them directly.
                return found if found is None or isinstance(found, Entry) else Entry.decode(found)
            value = self.store.get(key, now=self.clock.time())
        except StoreError as exc:
            self.counters.add(store_errors=1)
            _log.warning("response cache lookup failed, treated as a miss: %s", exc)
            return None
        if self._shared is not None:
            self._stats_due()
        return None if value is None else Entry.decode(value)

    def _put(self, key: str, entry: Entry, ttl: float) -> bool:
        try:
            if self._entries is not None:
                self._entries.put(key, entry, now=self.clock.time(), ttl=ttl)
            else:
                self.store.put(key, entry.value, now=self.clock.time(), ttl=ttl)
        except StoreError as exc:
            self.counters.add(store_errors=1)
            _log.warning("response cache store failed; the answer is not kept: %s", exc)
            return False
        if self._shared is not None:
            self._stats_due()
        return True

    async def _aget(self, key: str) -> Entry | None:
        if self.store.local:
            return self._get(key)
        return await asyncio.to_thread(self._get, key)

    async def _aput(self, key: str, entry: Entry, ttl: float) -> bool:
        if self.store.local:
            return self._put(key, entry, ttl)
        return await asyncio.to_thread(self._put, key, entry, ttl)

    # -- hits and stores -----------------------------------------------------------

    def answer(self, key: str, entry: Entry, *, coalesced: bool) -> tuple[str, list[Response]]:
        """Fresh responses of a stored (or shared) entry, counting it as a hit."""
        tokens, dollars = entry.tokens_saved, entry.dollars_saved
        if coalesced:
            self.counters.add(coalesced=1, tokens_saved=tokens, dollars_saved=dollars)
        else:
            self.counters.add(hits=1, tokens_saved=tokens, dollars_saved=dollars)
        if self.telemetry.sinks:
            self.telemetry.emit(
                CacheHit(
                    timestamp=self.clock.time(),
                    call_id="",
                    model=entry.model,
                    key=key.rpartition("/")[2][:16],
                    coalesced=coalesced,
                    stream=entry.stream,
                    tokens_saved=tokens,
                    dollars_saved=dollars,
                )
            )
        return entry.model, entry.responses()

    def lookup(self, key: str) -> tuple[str, list[Response]] | None:
        entry = self._get(key)
        return None if entry is None else self.answer(key, entry, coalesced=False)

    async def alookup(self, key: str) -> tuple[str, list[Response]] | None:
        entry = await self._aget(key)
        return None if entry is None else self.answer(key, entry, coalesced=False)

    def encode(self, model: str, responses: list[Response], *, stream: bool) -> Entry | None:
        """The entry for a completed answer, or None when it is not to be kept."""
        if not responses or not any(storable(r) for r in responses):
            return None
        if any(r.prompt_feedback and r.prompt_feedback.block_reason for r in responses):
            return None
        return Entry.encode(model=model, responses=responses, stream=stream)

    def _stored(self, key: str, entry: Entry, ttl: float, stream: bool) -> None:
        self.counters.add(stored=1)
        if self.telemetry.sinks:
            self.telemetry.emit(
                CacheStored(
                    timestamp=self.clock.time(),
                    call_id="",
                    model=entry.model,
                    key=key.rpartition("/")[2][:16],
                    stream=stream,
                    ttl=ttl,
                    size=len(entry.value),
                )
            )

    def keep(self, key: str, entry: Entry, ttl: float, *, stream: bool) -> None:
        if self._put(key, entry, ttl):
            self._stored(key, entry, ttl, stream)

    async def akeep(self, key: str, entry: Entry, ttl: float, *, stream: bool) -> None:
        if await self._aput(key, entry, ttl):
            self._stored(key, entry, ttl, stream)

    def miss(self) -> None:
        self.counters.add(misses=1)

    # -- lifecycle -------------------------------------------------------------------

    def clear(self) -> int:
        """Drop this project's entries; how many."""
        return self.store.clear(f"{self.project}/")

    def close(self) -> None:
        """Delete the context caches created here, write the counts, close the store."""
        if self.context is not None:
            self.context.close()
        self._close_store()

    async def aclose(self) -> None:
        if self.context is not None:
            await self.context.aclose()
        if self._shared is not None:
            await asyncio.to_thread(self.flush_stats)
        self._close_store()

    def _close_store(self) -> None:
        if self._shared is not None:
            self.flush_stats()
            self._at_exit.detach()
        self.store.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ResponseCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _write_pending(counters: SharedCounters, store: CacheStore, project: str) -> bool:
    """Add `counters`' unwritten deltas to `store`; on failure keep them for next time.

    A module function, not a method, so the exit finalizer holds no reference to the
    cache itself.
    """
    deltas = counters.take_pending()
    if not deltas:
        return True
    try:
        store.add_stats(project, deltas)
    except Exception as exc:  # counting never fails a call or a close
        counters.restore_pending(deltas)
        _log.warning("cache counters were not written to %r: %s", store, exc)
        return False
    return True
