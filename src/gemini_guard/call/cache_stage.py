"""The response cache as a stage of a Guard's calls: lookup before the chain, store after.

The Guard's `generate_content` calls (sync, async, streams) go through `CacheStage`
when the Guard has a cache. A call then goes:

    plan (policy, key; worked out by the caller) ─► hit? answer from the store
       └► miss: coalesce with identical calls in flight
                ─► context cache (long repeated prefix)
                ─► the Guard's own call (validate, chain, quota, retry)
                ─► store the answer if it came from the model asked for

Each Guard's calls are made for its scope (`gemini_guard.cache.scope.guard_scope`,
chosen by `CacheConfig.scope`), worked out once here: its own entries only, and hits
only while the API accepts its key. Every call that goes upstream tells the cache
whether the key was accepted or refused; a call whose key is not vouched for in this
process joins only the flights of its own key (another key's answer would reach it
unearned).

A hit skips the Guard's preflight checks: an entry exists only for a request that
passed them and was answered. Answers from a fallback model are not stored, so the
cache never pins a degraded answer for a whole TTL. Streams are stored once complete
and replayed as streams; they are not coalesced (a stream is consumed at its
reader's pace).

The stage knows nothing of the Guard: it is handed the Guard's uncached call
(`call`, `stream`) and what to do with an answer served without one (`finish`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from google.genai import types

from gemini_guard.cache.context import ContextCaching, Prefix
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.response import Plan, ResponseCache
from gemini_guard.cache.scope import CacheScope, guard_scope
from gemini_guard.call.effects import CallInfo
from gemini_guard.config import CacheConfig
from gemini_guard.errors import CallFailed, RequestRejected

if TYPE_CHECKING:
    from gemini_guard.guard import Guard

__all__ = ["CacheStage", "open_cache_stage"]

Response = types.GenerateContentResponse
# The Guard's own call, uncached: (model=, contents=, config=) -> the answer.
Call = Callable[..., Response]
ACall = Callable[..., Awaitable[Response]]
Stream = Callable[..., Iterator[Response]]
AStream = Callable[..., Awaitable[AsyncIterator[Response]]]
# What to do with an answer served by the cache (no call made): tell its CallInfo.
Finish = Callable[[Response, CallInfo], None]


def open_cache_stage(
    guard: Guard, cache: ResponseCache | CacheConfig | str, *, finish: Finish
) -> CacheStage:
    """The cache stage of `guard`'s calls, over `cache` (made from a URL or config)."""
    from gemini_guard.quota.pool import ProjectPool

    config = cache.config if isinstance(cache, ResponseCache) else _config(cache)
    gate = guard.quota
    pool = gate if isinstance(gate, ProjectPool) else None
    scope = guard_scope(config.scope, client=guard.client, project=guard.engine.project, pool=pool)
    # A pool sends each call with the key of the project it picks: a context cache
    # made with the Guard's own client would live in another project.
    context_client = None if pool is not None else guard.client
    if not isinstance(cache, ResponseCache):
        cache = ResponseCache(
            config,
            project=guard.engine.project,
            scope=scope,
            clock=guard.clock,
            telemetry=guard.telemetry,
            client=context_client,
        )
    return CacheStage(cache, scope, context_client, finish=finish)


def _config(cache: CacheConfig | str) -> CacheConfig:
    return cache if isinstance(cache, CacheConfig) else CacheConfig(url=cache)


def _hit_info(model: str) -> CallInfo:
    return CallInfo(call_id="cache", model=model, attempts=(), elapsed=0.0)


def _served_by_asked(model: str) -> bool:
    from gemini_guard.guard import last_call

    info = last_call()
    return info is not None and info.model == model.removeprefix("models/")


class CacheStage:
    """The response cache in front of a Guard's `generate_content` calls.

    The caller works out the call's `Plan` (`plan`: its key, TTL and config) and
    hands it in with its own uncached call; the stage answers from the store, or
    makes the call (coalesced, context-cached) and stores its answer.
    """

    def __init__(
        self,
        cache: ResponseCache,
        scope: CacheScope,
        context_client: Any = None,
        *,
        finish: Finish,
    ) -> None:
        self.cache = cache
        self.scope = scope
        self._context_client = context_client
        self._finish = finish

    @property
    def context(self) -> ContextCaching | None:
        return self.cache.context_for(self.scope, self._context_client)

    def plan(self, model: str, contents: Any, config: Any, *, stream: bool = False) -> Plan:
        """How a call meets the cache (its key is None when it is not cached)."""
        return self.cache.plan(model, contents, config, stream=stream, scope=self.scope)

    # -- threads ----------------------------------------------------------------------

    def _send(self, call: Call, model: str, contents: Any, config: Any) -> Response:
        """The Guard's call; what it says of the key is told to the cache."""
        try:
            response = self._send_whole_or_short(call, model, contents, config)
        except CallFailed as error:
            self.cache.call_failed(self.scope, error)
            raise
        self.cache.credential_accepted(self.scope)
        return response

    def _send_whole_or_short(self, call: Call, model: str, contents: Any, config: Any) -> Response:
        context = self.context
        prepared = context.prepare(model, contents, config) if context is not None else None
        if prepared is None:
            return call(model=model, contents=contents, config=config)
        prefix, name = prepared
        short, cfg = context.rewrite(prefix, name, config)  # type: ignore[union-attr]
        try:
            response = call(model=model, contents=short, config=cfg)
        except RequestRejected:
            # The entry is gone, or a fallback model cannot use it: send it whole.
            context.rejected(name)  # type: ignore[union-attr]
            return call(model=model, contents=contents, config=config)
        _account(context, prefix, name, response)
        return response

    def generate(self, plan: Plan, *, model: str, contents: Any, call: Call) -> Response:
        """`generate_content` through the cache; `call` is the Guard's own."""
        cache = self.cache
        key = plan.key
        if key is None:
            return self._send(call, model, contents, plan.config)
        hit = cache.lookup(key, scope=self.scope)
        if hit is not None:
            served, (response,) = hit
            self._finish(response, _hit_info(served))
            return response

        def miss() -> tuple[Response, Entry | None]:
            cache.miss()
            response = self._send(call, model, contents, plan.config)
            entry = None
            if _served_by_asked(model):
                entry = cache.encode(model, [response], stream=False)
                if entry is not None:
                    cache.keep(key, entry, plan.ttl, stream=False)
            return response, entry

        if not cache.config.coalesce:
            return miss()[0]
        flight = cache.flight(key, self.scope)
        (response, entry), shared = cache.coalescer.run(flight, miss)
        if not shared or entry is None:  # a leader, or its answer is not storable
            return response
        served, (copy,) = cache.answer(key, entry, coalesced=True)
        self._finish(copy, _hit_info(served))
        return copy

    def stream(self, plan: Plan, *, model: str, contents: Any, call: Stream) -> Iterator[Response]:
        """`generate_content_stream` through the cache; `call` is the Guard's own."""
        cache = self.cache
        scope = self.scope
        key = plan.key
        if key is not None:
            hit = cache.lookup(key, scope=scope)
            if hit is not None:
                served, chunks = hit
                for chunk in chunks:
                    self._finish(chunk, _hit_info(served))
                    yield chunk
                return
            cache.miss()
        # Context caching applies to streams too.
        context = self.context
        prepared = context.prepare(model, contents, plan.config) if context else None
        if prepared is not None:
            prefix, name = prepared
            short, cfg = context.rewrite(prefix, name, plan.config)  # type: ignore[union-attr]
            stream = call(model=model, contents=short, config=cfg)
        else:
            stream = call(model=model, contents=contents, config=plan.config)
        seen: list[Response] = []
        try:
            # The Guard's call is made when the first chunk is asked for.
            for chunk in stream:
                if not seen:
                    cache.credential_accepted(scope)
                seen.append(chunk)
                yield chunk
        except CallFailed as error:
            cache.call_failed(scope, error)
            raise
        if prepared is not None and seen:
            _account(context, prepared[0], prepared[1], seen[-1])
        if key is not None and _served_by_asked(model):
            entry = cache.encode(model, seen, stream=True)
            if entry is not None:
                cache.keep(key, entry, plan.ttl, stream=True)

    # -- asyncio ----------------------------------------------------------------------

    async def _asend(self, call: ACall, model: str, contents: Any, config: Any) -> Response:
        """`_send` for asyncio callers."""
        try:
            response = await self._asend_whole_or_short(call, model, contents, config)
        except CallFailed as error:
            await self.cache.acall_failed(self.scope, error)
            raise
        await self.cache.acredential_accepted(self.scope)
        return response

    async def _asend_whole_or_short(
        self, call: ACall, model: str, contents: Any, config: Any
    ) -> Response:
        context = self.context
        prepared = await context.aprepare(model, contents, config) if context else None
        if prepared is None:
            return await call(model=model, contents=contents, config=config)
        prefix, name = prepared
        short, cfg = context.rewrite(prefix, name, config)  # type: ignore[union-attr]
        try:
            response = await call(model=model, contents=short, config=cfg)
        except RequestRejected:
            context.rejected(name)  # type: ignore[union-attr]
            return await call(model=model, contents=contents, config=config)
        _account(context, prefix, name, response)
        return response

    async def agenerate(self, plan: Plan, *, model: str, contents: Any, call: ACall) -> Response:
        """`generate` for asyncio callers."""
        cache = self.cache
        key = plan.key
        if key is None:
            return await self._asend(call, model, contents, plan.config)
        hit = await cache.alookup(key, scope=self.scope)
        if hit is not None:
            served, (response,) = hit
            self._finish(response, _hit_info(served))
            return response

        async def miss() -> tuple[Response, Entry | None]:
            cache.miss()
            response = await self._asend(call, model, contents, plan.config)
            entry = None
            if _served_by_asked(model):
                entry = cache.encode(model, [response], stream=False)
                if entry is not None:
                    await cache.akeep(key, entry, plan.ttl, stream=False)
            return response, entry

        if not cache.config.coalesce:
            return (await miss())[0]
        flight = cache.flight(key, self.scope)
        (response, entry), shared = await cache.async_coalescer.run(flight, miss)
        if not shared or entry is None:
            return response
        served, (copy,) = cache.answer(key, entry, coalesced=True)
        self._finish(copy, _hit_info(served))
        return copy

    async def astream(
        self, plan: Plan, *, model: str, contents: Any, call: AStream
    ) -> AsyncIterator[Response]:
        """`stream` for asyncio callers: returns once the first chunk has come."""
        cache = self.cache
        scope = self.scope
        key = plan.key
        if key is not None:
            hit = await cache.alookup(key, scope=scope)
            if hit is not None:
                served, chunks = hit
                return self._replay(served, chunks)
            cache.miss()
        context = self.context
        prepared = await context.aprepare(model, contents, plan.config) if context else None
        try:
            # The Guard's call: it returns once the first chunk has come.
            if prepared is not None:
                short, cfg = context.rewrite(prepared[0], prepared[1], plan.config)  # type: ignore[union-attr]
                stream = await call(model=model, contents=short, config=cfg)
            else:
                stream = await call(model=model, contents=contents, config=plan.config)
        except CallFailed as error:
            await cache.acall_failed(scope, error)
            raise
        await cache.acredential_accepted(scope)
        return self._record(stream, model, plan, prepared)

    async def _record(
        self,
        stream: AsyncIterator[Response],
        model: str,
        plan: Plan,
        prepared: tuple[Prefix, str] | None,
    ) -> AsyncIterator[Response]:
        cache = self.cache
        seen: list[Response] = []
        async for chunk in stream:
            seen.append(chunk)
            yield chunk
        context = self.context
        if prepared is not None and seen and context is not None:
            _account(context, prepared[0], prepared[1], seen[-1])
        if plan.key is not None and _served_by_asked(model):
            entry = cache.encode(model, seen, stream=True)
            if entry is not None:
                await cache.akeep(plan.key, entry, plan.ttl, stream=True)

    async def _replay(self, served: str, chunks: list[Response]) -> AsyncIterator[Response]:
        for chunk in chunks:
            self._finish(chunk, _hit_info(served))
            yield chunk


def _account(context: Any, prefix: Prefix, name: str, response: Response) -> None:
    context.used(prefix, name, response)
