"""The response cache on the gateway's path: a repeated generateContent (or stream)
answered from the store, without an upstream call.

It is the Guard's own `ResponseCache` (the configuration's `cache`: the same store,
policy, TTL, size bound, counters and events), consulted at the HTTP level:

- which requests: `POST .../models/{m}:generateContent` and
  `:streamGenerateContent?alt=sse` on the Gemini surface, and `chat/completions`
  (streamed or not) on the OpenAI-compatible one (known by its exact JSON; an answer
  of one surface is never served on the other), decided by the cache's policy on the
  request's own fields (by default temperature 0; streams only with the cache's
  `streams` option, on by default). A REST client may mark a request with
  `labels: {"gemini-guard-cache": "yes" | "no" | "<ttl>"}`; the label is removed
  before the request is sent upstream;
- whose answers: each gateway token has its own scope, within the upstream's (the
  Guard's scope: its project or pool of projects, or its key with `scope = "key"`).
  Two tokens never share an answer, and neither do two gateways whose upstream
  projects differ, even on one store. The scope is derived from the token's SHA-256
  and hashed again with the store's secret: no token is written;
- under which credential: hits are gated, as in the library, by the upstream key the
  Guard sends with (when it has one key): a key the API has not yet accepted, or has
  refused, is not answered from the cache until one of its own calls succeeds. An
  unknown gateway token is refused before the cache is looked at;
- what is kept: a 200 from the model asked for (never a fallback's answer, nor an
  answer the Guard let through as a quiet failure), as the API's own JSON bytes,
  which a hit sends back as they came; a stream once it has come whole (its last
  chunk says why it finished), kept apart from the whole answer to the same request
  and replayed as the same server-sent events;
- identical requests at once: while one is upstream, the identical requests of the
  same scope that miss wait for its answer instead of sending their own (the cache's
  `coalesce` option, on by default), and get that answer, or its error. Streams are
  not coalesced: each goes at its own reader's pace.

A hit says `x-gemini-guard-cache: hit` (a looked-up request that went upstream says
`miss`, one that shared another's answer `coalesced`), `x-gemini-guard-model` (the
model that answered it) and `x-gemini-guard-attempts: 0`. A hit or a shared answer
spends no upstream quota and no dollars, so it is not counted against the token's
`rpm`, `rpd` or `usd_per_day`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gemini_guard.cache.entry import Entry
from gemini_guard.cache.policy import CACHE_LABEL
from gemini_guard.cache.response import ResponseCache, storable
from gemini_guard.cache.scope import CacheScope
from gemini_guard.call.http import config_of
from gemini_guard.errors import CallFailed
from gemini_guard.gateway.auth import Caller

__all__ = ["CACHE_HEADER", "GatewayCache", "Lookup", "sse_events"]

CACHE_HEADER = "x-gemini-guard-cache"

T = TypeVar("T")
_STREAM = "~sse"


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cacheable request: its key and TTL, its scope, and the body to send
    upstream on a miss (the cache's label removed)."""

    key: str
    ttl: float
    scope: CacheScope
    body: bytes
    stream: bool  # server-sent events: kept and replayed chunk by chunk
    openai: bool = False  # a chat completion of the OpenAI-compatible surface


class GatewayCache:
    """The Guard's response cache, per gateway token (see the module docstring)."""

    def __init__(self, cache: ResponseCache, upstream: CacheScope) -> None:
        self.cache = cache
        self._upstream = upstream
        self._scopes: dict[str, CacheScope] = {}

    def scope(self, caller: Caller) -> CacheScope:
        """`caller`'s scope: its token within the upstream's scope, gated by the
        upstream's credential."""
        scope = self._scopes.get(caller.key)
        if scope is None:
            upstream = self._upstream
            scope = self._scopes[caller.key] = CacheScope.tenant(
                f"{upstream.kind}\x00{upstream.name}\x00{caller.key}",
                credential=upstream.credential,
            )
        return scope

    def plan(
        self, caller: Caller, model: str, parsed: Any, body: bytes, *, stream: bool = False
    ) -> Lookup | None:
        """How a generateContent request (`stream`: streamGenerateContent as server-sent
        events) meets the cache (None: not cached)."""
        if not isinstance(parsed, dict):
            return None
        labels = parsed.get("labels")
        config = config_of(parsed)
        if isinstance(labels, dict) and CACHE_LABEL in labels:
            # The API rejects `labels` outside Vertex AI: the cache's own label goes no
            # further than here.
            rest = {k: v for k, v in labels.items() if k != CACHE_LABEL}
            forwarded = {k: v for k, v in parsed.items() if k != "labels"}
            if rest:
                forwarded["labels"] = rest
            body = json.dumps(forwarded, separators=(",", ":"), ensure_ascii=False).encode()
            config = {**(config or {}), "labels": labels}
        scope = self.scope(caller)
        plan = self.cache.plan(model, parsed.get("contents"), config, stream=stream, scope=scope)
        if plan.key is None:
            return None
        # A stream's answer is kept under a name of its own: a whole answer is one body,
        # a stream's several, and neither is served for the other.
        return Lookup(plan.key + _STREAM if stream else plan.key, plan.ttl, scope, body, stream)

    def plan_openai(self, caller: Caller, parsed: Any, body: bytes) -> Lookup | None:
        """How a chat completion of the OpenAI-compatible surface meets the cache (None:
        not cached). The policy reads its `temperature`; its key is the request's exact
        JSON (keys sorted), the model and `stream` in it included."""
        if not isinstance(parsed, dict):
            return None
        payload = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        scope = self.scope(caller)
        plan = self.cache.plan_exact(f"openai\x00{payload}", parsed.get("temperature"), scope=scope)
        if plan.key is None:
            return None
        stream = parsed.get("stream") is True
        return Lookup(plan.key, plan.ttl, scope, body, stream=stream, openai=True)

    @property
    def coalesces(self) -> bool:
        """Whether identical requests in flight together share one upstream request."""
        return self.cache.config.coalesce

    async def hit(self, lookup: Lookup) -> Entry | None:
        """The stored answer, counted as a hit, or None."""
        entry = await self.cache.alookup_entry(lookup.key, scope=lookup.scope)
        if entry is None or not entry.wire or (not lookup.stream and len(entry.wire) != 1):
            return None
        return entry

    def missed(self) -> None:
        """A cacheable request goes upstream: counted as a miss."""
        self.cache.miss()

    async def coalesce(self, lookup: Lookup, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """`call`'s outcome, made once for the identical requests of one scope that are
        in flight together, and whether this request shared another's. The call runs
        as a task of its own: a caller that goes away does not cancel it for the rest."""
        flight = self.cache.flight(lookup.key, lookup.scope)
        return await self.cache.async_coalescer.run(flight, call)

    def shared(self, lookup: Lookup, entry: Entry) -> None:
        """A request answered by an identical request's upstream call: counted as such."""
        self.cache.count_hit(lookup.key, entry, coalesced=True)

    async def answered(
        self, lookup: Lookup, model: str, served_by: str, bodies: Sequence[bytes]
    ) -> Entry | None:
        """A 200 came for a cacheable request (`bodies`: its JSON, or a whole stream's
        chunks): the credential is vouched for, and the answer kept when it came from
        the model asked for (the entry kept, or None)."""
        await self.cache.acredential_accepted(lookup.scope)
        if served_by != model:
            return None  # a fallback's answer: never pinned for a whole TTL
        if lookup.openai:
            if not (_chat_stream_done(bodies) if lookup.stream else _completed(bodies[0])):
                return None  # no choice, one that did not finish, or a stream cut short
            entry = Entry.encode_wire(model=model, bodies=bodies, stream=lookup.stream, openai=True)
            await self.cache.akeep(lookup.key, entry, lookup.ttl, stream=lookup.stream)
            return entry
        try:
            entry = Entry.encode_wire(model=model, bodies=bodies, stream=lookup.stream)
        except ValueError:  # not an answer the SDK can read: nothing worth keeping
            return None
        responses = entry.responses()
        if not any(storable(r) for r in responses):
            return None  # no candidates, or a blocked prompt
        if lookup.stream and not _finished(responses[-1]):
            return None  # a stream that ended early (an error event, say)
        await self.cache.akeep(lookup.key, entry, lookup.ttl, stream=lookup.stream)
        return entry

    async def failed(self, caller: Caller, error: CallFailed) -> None:
        """The Guard gave up on a request: a refused key stops this caller's hits (and,
        the refusal being recorded in the store, every scope gated by that key)."""
        await self.cache.acall_failed(self.scope(caller), error)


def sse_events(data: bytes) -> list[bytes] | None:
    """The data of each server-sent event in `data` (the JSON of each chunk of a
    stream), or None when `data` ends inside an event or holds none."""
    text = data.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n\n"):
        return None
    bodies = []
    for event in text.split(b"\n\n"):
        lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
        if lines:
            bodies.append(b"\n".join(line[1:] if line[:1] == b" " else line for line in lines))
    return bodies or None


def _finished(response: Any) -> bool:
    candidates = response.candidates
    return bool(candidates) and candidates[0].finish_reason is not None


def _completed(body: bytes) -> bool:
    """A chat completion with a first choice that has a message and finished."""
    choice = _first_choice(_json_or_none(body))
    return (
        choice is not None
        and isinstance(choice.get("message"), dict)
        and bool(choice.get("finish_reason"))
    )


def _chat_stream_done(bodies: Sequence[bytes]) -> bool:
    """A streamed chat completion that came whole: its chunks, one of them finishing
    the first choice, then `[DONE]`, and no error event among them."""
    if len(bodies) < 2 or bodies[-1].strip() != b"[DONE]":
        return False
    finished = False
    for body in bodies[:-1]:
        chunk = _json_or_none(body)
        if not isinstance(chunk, dict) or "error" in chunk:
            return False
        choice = _first_choice(chunk)
        finished = finished or (choice is not None and bool(choice.get("finish_reason")))
    return finished


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _first_choice(answer: Any) -> dict[str, Any] | None:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice: dict[str, Any] = choices[0]
    return choice
