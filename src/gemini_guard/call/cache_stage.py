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
(`call`) and what to do with an answer served without one (`finish`). Its logic is
written once, as generators of effects (`Lookup`, `Prepare`, `Call`, `Vouch`,
`Keep`, `Coalesce`) that the shared drivers carry out, in a thread or as a task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from google.genai import types

from gemini_guard.cache.context import ContextCaching, Prefix
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.response import CachePlan, ResponseCache
from gemini_guard.cache.scope import CacheScope, guard_scope
from gemini_guard.cache.settings import CacheConfig
from gemini_guard.call.driver import Ports, adrive, drive
from gemini_guard.call.effects import (
    Call,
    CallInfo,
    Coalesce,
    Keep,
    Lookup,
    Outcome,
    Prepare,
    Vouch,
)
from gemini_guard.errors import CallFailed, RequestRejected

if TYPE_CHECKING:
    from gemini_guard.guard import Guard

__all__ = ["CacheStage", "open_cache_stage"]

Response = types.GenerateContentResponse
R = TypeVar("R")
# A stage of the cache: a generator of its effects that returns what it decided.
Stage = Generator[Any, Outcome[Any] | None, R]
# A stream's start: a hit `(model, chunks)`, or the Guard's live stream and the
# context cache prefix it was sent with.
Opened = tuple[tuple[str, list[Response]] | None, Any, tuple[Prefix, str] | None]
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
    scope = guard_scope(
        config.scope, client=guard.unguarded_client, project=guard.engine.project, pool=pool
    )
    # A pool sends each call with the key of the project it picks: a context cache
    # made with the Guard's own client would live in another project.
    context_client = None if pool is not None else guard.unguarded_client
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
    """Whether the answer is one to keep: the asked model's, and sound (an answer
    returned although unusable, e.g. thinking ate the budget, is never kept)."""
    from gemini_guard.call.info import last_call

    info = last_call()
    return (
        info is not None
        and info.model == model.removeprefix("models/")
        and info.quiet_failure is None
    )


class CacheStage:
    """The response cache in front of a Guard's `generate_content` calls.

    The caller works out the call's `CachePlan` (`plan`: its key, TTL and config) and
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

    def plan(self, model: str, contents: Any, config: Any, *, stream: bool = False) -> CachePlan:
        """How a call meets the cache (its key is None when it is not cached)."""
        return self.cache.plan(model, contents, config, stream=stream, scope=self.scope)

    # -- the ports: the only part written for each of threads and asyncio ------------

    def _ports(self, call: Callable[..., Response | Iterator[Response]]) -> Ports:
        cache = self.cache

        def coalesce(flight: str, steps: Stage[Any], io: Ports) -> Any:
            return cache.coalescer.run(flight, lambda: drive(steps, io))

        return Ports(
            lookup=cache.lookup,
            keep=cache.keep,
            accepted=cache.credential_accepted,
            refused=cache.call_failed,
            prepare=lambda context, *request: context.prepare(*request),
            call=call,
            coalesce=coalesce,
        )

    def _aports(self, call: Callable[..., Awaitable[Any]]) -> Ports:
        cache = self.cache

        def coalesce(flight: str, steps: Stage[Any], io: Ports) -> Any:
            return cache.async_coalescer.run(flight, lambda: adrive(steps, io))

        return Ports(
            lookup=cache.alookup,
            keep=cache.akeep,
            accepted=cache.acredential_accepted,
            refused=cache.acall_failed,
            prepare=lambda context, *request: context.aprepare(*request),
            call=call,
            coalesce=coalesce,
        )

    # -- the entry points ---------------------------------------------------------------

    def generate(
        self, plan: CachePlan, *, model: str, contents: Any, call: Callable[..., Response]
    ) -> Response:
        """`generate_content` through the cache; `call` is the Guard's own."""
        return drive(self._generate(plan, model, contents), self._ports(call))

    async def agenerate(
        self,
        plan: CachePlan,
        *,
        model: str,
        contents: Any,
        call: Callable[..., Awaitable[Response]],
    ) -> Response:
        """`generate` for asyncio callers."""
        return await adrive(self._generate(plan, model, contents), self._aports(call))

    def stream(
        self, plan: CachePlan, *, model: str, contents: Any, call: Callable[..., Iterator[Response]]
    ) -> Iterator[Response]:
        """`generate_content_stream` through the cache; `call` is the Guard's own.
        The Guard's sync stream makes its call when the first chunk is asked for, so
        what it says of the key is told as the chunks come."""
        cache, scope = self.cache, self.scope
        io = self._ports(call)
        hit, stream, prepared = drive(self._open(plan, model, contents, vouch=False), io)
        if hit is not None:
            yield from self._replayed(*hit)
            return
        seen: list[Response] = []
        try:
            for chunk in stream:
                if not seen:
                    cache.credential_accepted(scope)
                seen.append(chunk)
                yield chunk
        except CallFailed as error:
            cache.call_failed(scope, error)
            raise
        drive(self._close(plan, model, prepared, seen), io)

    async def astream(
        self,
        plan: CachePlan,
        *,
        model: str,
        contents: Any,
        call: Callable[..., Awaitable[AsyncIterator[Response]]],
    ) -> AsyncIterator[Response]:
        """`stream` for asyncio callers: returns once the first chunk has come."""
        io = self._aports(call)
        hit, stream, prepared = await adrive(self._open(plan, model, contents, vouch=True), io)
        if hit is not None:
            return _aiter(self._replayed(*hit))
        return self._record(stream, plan, model, prepared, io)

    async def _record(
        self,
        stream: AsyncIterator[Response],
        plan: CachePlan,
        model: str,
        prepared: tuple[Prefix, str] | None,
        io: Ports,
    ) -> AsyncIterator[Response]:
        seen: list[Response] = []
        async for chunk in stream:
            seen.append(chunk)
            yield chunk
        await adrive(self._close(plan, model, prepared, seen), io)

    def _replayed(self, served: str, chunks: list[Response]) -> Iterator[Response]:
        for chunk in chunks:
            self._finish(chunk, _hit_info(served))
            yield chunk

    # -- the stages -------------------------------------------------------------------

    def _generate(self, plan: CachePlan, model: str, contents: Any) -> Stage[Response]:
        cache = self.cache
        key = plan.key
        if key is None:
            return (yield from self._send(model, contents, plan.config))
        hit = yield from _value(Lookup(key, self.scope))
        response: Response
        if hit is not None:
            served, (response,) = hit
            self._finish(response, _hit_info(served))
            return response
        if not cache.config.coalesce:
            response, _ = yield from self._miss(plan, model, contents)
            return response
        flight = cache.flight(key, self.scope)
        (response, entry), shared = yield from _value(
            Coalesce(flight, self._lead(plan, model, contents))
        )
        if not shared or entry is None:  # the leader, or its answer is not storable
            return response
        served, (copy,) = cache.answer(key, entry, coalesced=True)
        self._finish(copy, _hit_info(served))
        return copy

    def _lead(
        self, plan: CachePlan, model: str, contents: Any
    ) -> Stage[tuple[Response, Entry | None]]:
        """The leader of a flight looks again before it calls: between this caller's
        lookup and its joining the flight, the previous leader may have stored the
        answer and left (its followers were served; this caller came just after)."""
        assert plan.key is not None
        hit = yield from _value(Lookup(plan.key, self.scope))
        if hit is not None:
            served, (response,) = hit
            self._finish(response, _hit_info(served))
            return response, None
        return (yield from self._miss(plan, model, contents))

    def _miss(
        self, plan: CachePlan, model: str, contents: Any
    ) -> Stage[tuple[Response, Entry | None]]:
        cache = self.cache
        cache.miss()
        response = yield from self._send(model, contents, plan.config)
        entry = None
        if plan.key is not None and _served_by_asked(model):
            entry = cache.encode(model, [response], stream=False)
            if entry is not None:
                yield Keep(plan.key, entry, plan.ttl, False)
        return response, entry

    def _send(self, model: str, contents: Any, config: Any) -> Stage[Response]:
        """The Guard's call; what it says of the key is told to the cache."""
        sent = yield from self._whole_or_short(model, contents, config)
        response: Response = yield from self._vouched(sent)
        return response

    def _vouched(self, sent: Outcome[Any]) -> Stage[Any]:
        if sent.error is not None:
            if isinstance(sent.error, CallFailed):
                yield Vouch(self.scope, sent.error)
            raise sent.error
        yield Vouch(self.scope, None)
        return sent.value

    def _whole_or_short(self, model: str, contents: Any, config: Any) -> Stage[Outcome[Any]]:
        """The call, with a long repeated prefix sent as a context cache entry."""
        context = self.context
        prepared = None
        if context is not None:
            prepared = yield from _value(Prepare(context, model, contents, config))
        if prepared is None:
            return (yield from _called(model, contents, config))
        assert context is not None
        prefix, name = prepared
        short, cfg = context.rewrite(prefix, name, config)
        sent = yield from _called(model, short, cfg)
        if isinstance(sent.error, RequestRejected):
            # The entry is gone, or a fallback model cannot use it: send it whole.
            context.rejected(name)
            return (yield from _called(model, contents, config))
        if sent.error is None:
            _account(context, prefix, name, sent.value)
        return sent

    def _open(self, plan: CachePlan, model: str, contents: Any, *, vouch: bool) -> Stage[Opened]:
        """A stream's start: a hit, or the Guard's stream (context caching applies to
        streams too). `vouch`: the call has been made (its first chunk came)."""
        key = plan.key
        if key is not None:
            hit = yield from _value(Lookup(key, self.scope))
            if hit is not None:
                return hit, None, None
            self.cache.miss()
        context = self.context
        prepared = None
        if context is not None:
            prepared = yield from _value(Prepare(context, model, contents, plan.config))
        if prepared is not None:
            assert context is not None
            short, cfg = context.rewrite(prepared[0], prepared[1], plan.config)
            sent = yield from _called(model, short, cfg)
        else:
            sent = yield from _called(model, contents, plan.config)
        if vouch:
            return None, (yield from self._vouched(sent)), prepared
        if sent.error is not None:
            raise sent.error
        return None, sent.value, prepared

    def _close(
        self, plan: CachePlan, model: str, prepared: tuple[Prefix, str] | None, seen: list[Response]
    ) -> Stage[None]:
        """A stream read to its end: account the context entry, keep the answer."""
        context = self.context
        if prepared is not None and seen and context is not None:
            _account(context, prepared[0], prepared[1], seen[-1])
        if plan.key is not None and _served_by_asked(model):
            entry = self.cache.encode(model, seen, stream=True)
            if entry is not None:
                yield Keep(plan.key, entry, plan.ttl, True)


def _value(effect: Lookup | Prepare | Coalesce) -> Stage[Any]:
    """What an effect answered with (its errors are raised by the driver)."""
    outcome = yield effect
    assert outcome is not None
    return outcome.value


def _called(model: str, contents: Any, config: Any) -> Stage[Outcome[Any]]:
    outcome = yield Call(model, contents, config)
    assert outcome is not None
    return outcome


async def _aiter(chunks: Iterator[Response]) -> AsyncIterator[Response]:
    for chunk in chunks:
        yield chunk


def _account(context: Any, prefix: Prefix, name: str, response: Any) -> None:
    context.used(prefix, name, response)
