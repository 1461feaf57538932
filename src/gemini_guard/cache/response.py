"""`ResponseCache`: the store, the policy, the counters and the events, in one place.

The Guard calls it around each request (see `gemini_guard.call.cache_stage`):
`plan` decides whether a call is cached and under which key, `lookup` answers a hit,
`store` keeps a completed answer. A failing store never fails a call: its error is
logged, counted (`store_errors`) and the call goes on as a miss. A Redis store that
stops answering is then left alone for a few seconds (`StoreSkipped`): its lookups
are quiet misses and its stores are dropped, neither logged nor counted again.

Answers travel as `Entry`s, decoded once: a `memory://` store keeps the entry object
itself, the others its bytes (decoded again on each hit, as they come from another
process's writes).

Every call is made for a `CacheScope` (`gemini_guard.cache.scope`): its key carries
the scope's HMAC digest, so a lookup only finds its own scope's entries, and a hit
needs the scope's credential to be accepted by the API (`credential_accepted`,
`credential_refused`, recorded in the store so every process sharing it knows). A
cache has a default scope (`scope=`, else the project `project`), used when a call
names none.

With a shared store (SQLite, Redis) the counters are also added to the store's, under
the fingerprint of the default scope (`stats_label`), for `gemini-guard quota
--cache` to show. Counting stays in memory; the
deltas ride along with the next store access once `stats_interval` seconds have
passed since the last write, and on `close()` / `flush_stats()`, so a hit costs no
extra round trip. A memory store is one process's own: its counters are not copied.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.genai import types

from gemini_guard.cache.coalescing import AsyncCoalescer, Coalescer
from gemini_guard.cache.context import ContextCaching, ContextPlanner
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.events import CacheHit, CacheStored
from gemini_guard.cache.keys import digest, request_key
from gemini_guard.cache.policy import CallOptions, decide, split_label
from gemini_guard.cache.scope import CacheScope, ScopeKeys, refuses_credential
from gemini_guard.cache.settings import CacheConfig
from gemini_guard.cache.stats import CacheStats, Counters, SharedCounters
from gemini_guard.cache.stores import CacheStore, StoreSkipped, open_cache_store
from gemini_guard.cache.stores.memory import MemoryCacheStore
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import CallFailed, StoreDamaged, StoreError
from gemini_guard.telemetry import Telemetry

if TYPE_CHECKING:
    from google import genai

__all__ = ["CachePlan", "ResponseCache"]

_log = logging.getLogger("gemini_guard.cache")

Response = types.GenerateContentResponse


@dataclass(frozen=True, slots=True)
class CachePlan:
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
        scope: CacheScope | None = None,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
        store: CacheStore | None = None,
        client: genai.Client | None = None,
        stats_interval: float = 1.0,
    ) -> None:
        self.config = config if isinstance(config, CacheConfig) else CacheConfig(url=config)
        self.project = project
        # The scope of calls that name none (a Guard names its own on every call).
        self.scope = scope if scope is not None else CacheScope.project(project)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.store: CacheStore = (
            store
            if store is not None
            else open_cache_store(
                self.config.url, max_entries=self.config.max_entries, clock=self.clock
            )
        )
        # A memory store holds decoded entries, not bytes.
        self._entries: MemoryCacheStore[Any] | None = (
            self.store if isinstance(self.store, MemoryCacheStore) else None
        )
        self.keys = ScopeKeys(self.store)
        # Credentials the API accepted here (until when) and refused here: a refusal
        # is kept even if the store could not record it, so it stops hits at once.
        self._vouched: dict[str, float] = {}
        self._refused: set[str] = set()
        # Credentials a gated lookup found no entry for since their last recorded
        # acceptance: the store may hold another process's refusal, so the next
        # success is written even when this process still vouches for them.
        self._unsure: set[str] = set()
        # Set when the store turns out damaged while running: one warning, then every
        # call goes upstream without touching the store again.
        self._damaged = False
        self.counters: Counters
        # Shared stores get the counters too (see the module docstring).
        self._shared: SharedCounters | None = None
        if self.store.local:
            self.counters = Counters()
        else:
            self.counters = self._shared = SharedCounters()
            # Counts not yet written when the cache is dropped or the process exits.
            self._at_exit = weakref.finalize(
                self, _write_pending, self._shared, self.store, self.keys, self.scope
            )
        self.stats_interval = stats_interval
        self._stats_written_at = float("-inf")
        self.coalescer = Coalescer()
        self.async_coalescer = AsyncCoalescer()
        self._client = client
        # Context caches per scope: a cachedContents entry lives in one project on
        # Google's side, and one scope's prefixes are nobody else's business.
        self._contexts: dict[CacheScope, ContextCaching] = {}
        self._contexts_lock = threading.Lock()

    @property
    def context(self) -> ContextCaching | None:
        """Context caching of the default scope (None when off or without a client)."""
        return self.context_for(self.scope, self._client)

    def context_for(self, scope: CacheScope, client: genai.Client | None) -> ContextCaching | None:
        """Context caching for `scope`'s calls, made with `client` on first use (None
        when context caching is off or there is no client)."""
        if not self.config.context:
            return None
        found = self._contexts.get(scope)
        if found is not None or client is None:
            return found
        with self._contexts_lock:
            found = self._contexts.get(scope)
            if found is None:
                found = self._contexts[scope] = ContextCaching(
                    client,
                    planner=ContextPlanner(
                        min_tokens=self.config.context_min_tokens,
                        min_repeats=self.config.context_min_repeats,
                        ttl=self.config.context_ttl,
                        refresh=self.config.context_refresh,
                    ),
                    project=scope.kind,
                    clock=self.clock,
                    telemetry=self.telemetry,
                    counters=self.counters,
                )
        return found

    def __repr__(self) -> str:
        return f"ResponseCache({self.store!r}, project={self.project!r})"

    def stats(self) -> CacheStats:
        """hits, misses, coalesced calls, tokens and dollars saved so far."""
        return self.counters.snapshot()

    def flush_stats(self) -> bool:
        """Add the counts not yet written to the store's counters now; False if it failed."""
        if self._shared is None:
            return True
        if self._damaged:
            return False  # the store is bypassed: the counts stay in this process
        self._stats_written_at = self.clock.monotonic()
        return _write_pending(self._shared, self.store, self.keys, self.scope)

    def _stats_due(self) -> None:
        shared = self._shared
        if (
            shared is not None
            and shared.has_pending
            and self.clock.monotonic() - self._stats_written_at >= self.stats_interval
        ):
            self.flush_stats()

    # -- decisions -----------------------------------------------------------------

    def plan(
        self,
        model: str,
        contents: Any,
        config: Any,
        *,
        stream: bool = False,
        scope: CacheScope | None = None,
    ) -> CachePlan:
        config, label = split_label(config)
        ttl_namespace = self._ttl_namespace(config, label, stream=stream, scope=scope)
        if ttl_namespace is None:
            return CachePlan(config, None, 0.0)
        ttl, namespace = ttl_namespace
        key = request_key(project=namespace, model=model, contents=contents, config=config)
        if key is None:
            self.counters.add(skipped=1)
        return CachePlan(config, key, ttl)

    def plan_exact(self, payload: str, temperature: Any, *, scope: CacheScope) -> CachePlan:
        """How a request known by its exact JSON `payload` meets the cache: for an HTTP
        surface whose requests have no canonical form here (Gemini's OpenAI-compatible
        one). The policy reads `temperature`; its key is the payload's digest."""
        config = {"temperature": temperature}
        ttl_namespace = self._ttl_namespace(config, CallOptions(), stream=False, scope=scope)
        if ttl_namespace is None:
            return CachePlan(config, None, 0.0)
        ttl, namespace = ttl_namespace
        return CachePlan(config, f"{namespace}/{digest(namespace, payload)}", ttl)

    def _ttl_namespace(
        self, config: Any, label: CallOptions, *, stream: bool, scope: CacheScope | None
    ) -> tuple[float, str] | None:
        """The TTL of a request the policy takes, and the digest its keys start with;
        None (counted as skipped) when it is not cached."""
        ttl = decide(config, label, policy=self.config.policy, default_ttl=self.config.ttl)
        if ttl is None or (stream and not self.config.streams) or self._damaged:
            self.counters.add(skipped=1)
            return None
        try:
            return ttl, self.keys.scope_id(scope if scope is not None else self.scope)
        except StoreError as exc:
            # No secret, no key: the call goes upstream and nothing is kept.
            self.counters.add(skipped=1)
            self._store_failed(exc, "response cache unavailable, the call is sent")
            return None

    def scope_key(self, scope: CacheScope, model: str, contents: Any, config: Any) -> str | None:
        """The stored key of a request in `scope` (None when it cannot be cached)."""
        return request_key(
            project=self.keys.scope_id(scope), model=model, contents=contents, config=config
        )

    @property
    def stats_label(self) -> str:
        """The label this cache's counters are filed under in a shared store: a
        fingerprint of its default scope, never a name."""
        return _label(self.keys, self.scope)

    # -- credentials -----------------------------------------------------------------

    def vouched(self, scope: CacheScope) -> bool:
        """True when `scope`'s credential (if any) was accepted by the API in this
        process and not refused since: its calls may share another's answer."""
        credential = scope.credential
        if credential is None:
            return True
        return self._vouched.get(credential, float("-inf")) > self.clock.time()

    def flight(self, key: str, scope: CacheScope) -> str:
        """The name concurrent identical calls of `scope` share one upstream call under.

        A call whose credential is vouched for joins any vouched call's flight. One
        that is not shares only with calls of its own credential: the leader's answer
        then proves that credential too, and no other key's answer reaches it."""
        credential = scope.credential
        if credential is None or self.vouched(scope):
            return key
        return f"{key}#{self.keys.credential_id(credential)}"

    def _gate(self, scope: CacheScope | None) -> tuple[bool, str | None]:
        """(may be served at all, the credential digest the store must vouch for)."""
        credential = (scope if scope is not None else self.scope).credential
        if credential is None:
            return True, None
        if credential in self._refused:
            return False, None
        try:
            return True, self.keys.credential_id(credential)
        except StoreError as exc:
            self._store_failed(exc, "response cache lookup failed, treated as a miss")
            return False, None

    def credential_accepted(self, scope: CacheScope) -> None:
        """The API answered a call of `scope`: its credential may be served again."""
        credential = scope.credential
        if credential is None:
            return
        now = self.clock.time()
        ttl = self.config.credential_ttl
        known = self._vouched.get(credential, float("-inf"))
        self._refused.discard(credential)
        self._vouched[credential] = now + ttl
        # A fresh record in the store is needed when none may be there (never
        # written, half its time gone) or another process may have refused it since.
        if known - now > ttl / 2 and credential not in self._unsure:
            return
        self._unsure.discard(credential)
        self._record(credential, accepted=True, now=now)

    def credential_refused(self, scope: CacheScope) -> None:
        """The API refused `scope`'s credential: no hit for it from now on, in any
        process sharing the store, until one of its own calls succeeds."""
        credential = scope.credential
        if credential is None:
            return
        self._refused.add(credential)
        self._vouched.pop(credential, None)
        self._record(credential, accepted=False, now=self.clock.time())

    def call_failed(self, scope: CacheScope, error: BaseException) -> None:
        """Learn from a failed call of `scope`: a refused credential is recorded."""
        if isinstance(error, CallFailed) and refuses_credential(error.diagnosis.category):
            self.credential_refused(scope)

    async def acredential_accepted(self, scope: CacheScope) -> None:
        if self.store.local or scope.credential is None:
            self.credential_accepted(scope)
        else:
            await asyncio.to_thread(self.credential_accepted, scope)

    async def acall_failed(self, scope: CacheScope, error: BaseException) -> None:
        if self.store.local:
            self.call_failed(scope, error)
        else:
            await asyncio.to_thread(self.call_failed, scope, error)

    def _record(self, credential: str, *, accepted: bool, now: float) -> None:
        if self._damaged:
            return
        try:
            self.store.record_credential(
                self.keys.credential_id(credential),
                accepted=accepted,
                now=now,
                ttl=self.config.credential_ttl,
            )
        except StoreError as exc:
            # A lost acceptance only costs hits; a lost refusal is still kept here.
            self._store_failed(exc, "response cache could not record a credential")

    # -- the store, never failing a call -------------------------------------------

    def _store_failed(self, exc: StoreError, what: str) -> None:
        if isinstance(exc, StoreSkipped):
            return  # a store pausing after an outage, already warned of: a quiet miss
        self.counters.add(store_errors=1)
        if not isinstance(exc, StoreDamaged):
            _log.warning("%s: %s", what, exc)  # busy, timed out: the next call may succeed
        elif not self._damaged:
            # Damage does not heal: warning on every call would bury the one message.
            self._damaged = True
            if self._shared is not None:
                self._at_exit.detach()
            _log.warning(
                "%s: %s. The response cache is bypassed until this process restarts; "
                "calls go on uncached",
                what,
                exc,
            )

    def _get(self, key: str, credential: str | None = None) -> Entry | None:
        entries = self._entries
        try:
            if entries is not None:
                found = entries.get(key, now=self.clock.time(), credential=credential)
                # Bytes when the store is shared with code that puts them directly.
                return found if found is None or isinstance(found, Entry) else Entry.decode(found)
            value = self.store.get(key, now=self.clock.time(), credential=credential)
        except StoreError as exc:
            self._store_failed(exc, "response cache lookup failed, treated as a miss")
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
            self._store_failed(exc, "response cache store failed; the answer is not kept")
            return False
        if self._shared is not None:
            self._stats_due()
        return True

    async def _aget(self, key: str, credential: str | None) -> Entry | None:
        if self.store.local:
            return self._get(key, credential)
        return await asyncio.to_thread(self._get, key, credential)

    async def _aput(self, key: str, entry: Entry, ttl: float) -> bool:
        if self.store.local:
            return self._put(key, entry, ttl)
        return await asyncio.to_thread(self._put, key, entry, ttl)

    # -- hits and stores -----------------------------------------------------------

    def answer(self, key: str, entry: Entry, *, coalesced: bool) -> tuple[str, list[Response]]:
        """Fresh responses of a stored (or shared) entry, counting it as a hit."""
        self.count_hit(key, entry, coalesced=coalesced)
        return entry.model, entry.responses()

    def count_hit(self, key: str, entry: Entry, *, coalesced: bool = False) -> None:
        """Count `entry` as served (a hit, or a share of a coalesced call) and say so."""
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

    def lookup(
        self, key: str, *, scope: CacheScope | None = None
    ) -> tuple[str, list[Response]] | None:
        """The answer stored under `key` for `scope` (default: the cache's own), or None
        on a miss or when the scope's credential is not accepted."""
        allowed, credential = self._gate(scope)
        if not allowed:
            return None
        entry = self._get(key, credential)
        return self._served(key, entry, scope, credential)

    async def alookup(
        self, key: str, *, scope: CacheScope | None = None
    ) -> tuple[str, list[Response]] | None:
        allowed, credential = self._gate(scope)
        if not allowed:
            return None
        entry = await self._aget(key, credential)
        return self._served(key, entry, scope, credential)

    async def alookup_entry(self, key: str, *, scope: CacheScope) -> Entry | None:
        """The entry stored under `key` for `scope`, counted as a hit, or None (a miss,
        or the scope's credential is not accepted): for callers that answer with the
        entry's stored bytes (`Entry.wire`) rather than with SDK objects."""
        allowed, credential = self._gate(scope)
        if not allowed:
            return None
        entry = await self._aget(key, credential)
        if entry is None:
            self._served(key, None, scope, credential)  # notes the credential as unsure
            return None
        self.count_hit(key, entry)
        return entry

    def _served(
        self, key: str, entry: Entry | None, scope: CacheScope | None, credential: str | None
    ) -> tuple[str, list[Response]] | None:
        if entry is None:
            if credential is not None:
                raw = (scope if scope is not None else self.scope).credential
                if raw is not None:
                    self._unsure.add(raw)
            return None
        return self.answer(key, entry, coalesced=False)

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

    def clear(self, scope: CacheScope | None = None) -> int:
        """Drop the entries of `scope` (default: the cache's own); how many."""
        return self.store.clear(f"{self.keys.scope_id(scope or self.scope)}/")

    def close(self) -> None:
        """Delete the context caches created here, write the counts, close the store."""
        for context in self._drain_contexts():
            context.close()
        self._close_store()

    async def aclose(self) -> None:
        for context in self._drain_contexts():
            await context.aclose()
        if self._shared is not None:
            await asyncio.to_thread(self.flush_stats)
        self._close_store()

    def _drain_contexts(self) -> list[ContextCaching]:
        with self._contexts_lock:
            contexts = list(self._contexts.values())
            self._contexts.clear()
        return contexts

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


def _label(keys: ScopeKeys, scope: CacheScope) -> str:
    return keys.scope_id(scope)[:12]


def _write_pending(
    counters: SharedCounters, store: CacheStore, keys: ScopeKeys, scope: CacheScope
) -> bool:
    """Add `counters`' unwritten deltas to `store`; on failure keep them for next time.

    A module function, not a method, so the exit finalizer holds no reference to the
    cache itself.
    """
    deltas = counters.take_pending()
    if not deltas:
        return True
    try:
        store.add_stats(_label(keys, scope), deltas)
    except Exception as exc:  # counting never fails a call or a close
        counters.restore_pending(deltas)
        _log.warning("cache counters were not written to %r: %s", store, exc)
        return False
    return True
