"""The cache around a Guard's calls: `guard.models` and `guard.aio.models`, cached.

`attach(guard, cache)` wraps the Guard's two model namespaces. A call then goes:

    plan (policy, key) ─► hit? answer from the store
                       └► miss: coalesce with identical calls in flight
                                ─► context cache (long repeated prefix)
                                ─► the Guard's own call (validate, chain, quota, retry)
                                ─► store the answer if it came from the model asked for

A hit skips the Guard's preflight checks: an entry exists only for a request that
passed them and was answered. Answers from a fallback model are not stored, so the
cache never pins a degraded answer for a whole TTL. Streams are stored once complete
and replayed as streams; they are not coalesced (a stream is consumed at its
reader's pace).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from google.genai import types

from gemini_guard.cache.context import Prefix
from gemini_guard.cache.entry import Entry
from gemini_guard.cache.response import Plan, ResponseCache
from gemini_guard.config import CacheConfig
from gemini_guard.errors import RequestRejected
from gemini_guard.pipeline import CallInfo

if TYPE_CHECKING:
    from gemini_guard.guard import AsyncGuardedModels, Guard, GuardedModels

__all__ = ["AsyncCachedModels", "CachedModels", "attach"]

Response = types.GenerateContentResponse


def attach(guard: Guard, cache: ResponseCache | CacheConfig | str) -> ResponseCache:
    """Put `cache` in front of `guard.models` and `guard.aio.models`; returns it."""
    if not isinstance(cache, ResponseCache):
        cache = ResponseCache(
            cache,
            project=guard.engine.project,
            clock=guard.clock,
            telemetry=guard.telemetry,
            client=guard.client,
        )
    guard.models = CachedModels(guard, guard.models, cache)  # type: ignore[assignment]
    guard.aio.models = AsyncCachedModels(guard, guard.aio.models, cache)  # type: ignore[assignment]
    return cache


def _hit_info(model: str) -> CallInfo:
    return CallInfo(call_id="cache", model=model, attempts=(), elapsed=0.0)


def _served_by_asked(guard: Guard, model: str) -> bool:
    from gemini_guard.guard import last_call

    info = last_call()
    return info is not None and info.model == model.removeprefix("models/")


class CachedModels:
    """`guard.models` with the response cache in front (other calls pass through)."""

    def __init__(self, guard: Guard, inner: GuardedModels, cache: ResponseCache) -> None:
        self._guard = guard
        self._inner = inner
        self.cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _send(self, model: str, contents: Any, config: Any) -> Response:
        context = self.cache.context
        prepared = context.prepare(model, contents, config) if context is not None else None
        if prepared is None:
            return self._inner.generate_content(model=model, contents=contents, config=config)
        prefix, name = prepared
        short, cfg = context.rewrite(prefix, name, config)  # type: ignore[union-attr]
        try:
            response = self._inner.generate_content(model=model, contents=short, config=cfg)
        except RequestRejected:
            # The entry is gone, or a fallback model cannot use it: send it whole.
            context.rejected(name)  # type: ignore[union-attr]
            return self._inner.generate_content(model=model, contents=contents, config=config)
        _account(context, prefix, name, response)
        return response

    def generate_content(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> Response:
        cache = self.cache
        plan = cache.plan(model, contents, config)
        key = plan.key
        if key is None:
            return self._send(model, contents, plan.config)
        hit = cache.lookup(key)
        if hit is not None:
            served, (response,) = hit
            self._guard._finish(response, _hit_info(served))
            return response

        def call() -> tuple[Response, Entry | None]:
            cache.miss()
            response = self._send(model, contents, plan.config)
            entry = None
            if _served_by_asked(self._guard, model):
                entry = cache.encode(model, [response], stream=False)
                if entry is not None:
                    cache.keep(key, entry, plan.ttl, stream=False)
            return response, entry

        if not cache.config.coalesce:
            return call()[0]
        (response, entry), shared = cache.coalescer.run(key, call)
        if not shared:
            return response
        if entry is None:  # the leader's answer is not storable: share the object
            return response
        served, (copy,) = cache.answer(key, entry, coalesced=True)
        self._guard._finish(copy, _hit_info(served))
        return copy

    def generate_content_stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> Iterator[Response]:
        cache = self.cache
        plan = cache.plan(model, contents, config, stream=True)
        key = plan.key
        if key is not None:
            hit = cache.lookup(key)
            if hit is not None:
                served, chunks = hit
                for chunk in chunks:
                    self._guard._finish(chunk, _hit_info(served))
                    yield chunk
                return
            cache.miss()
        # Context caching applies to streams too.
        context = cache.context
        prepared = context.prepare(model, contents, plan.config) if context else None
        if prepared is not None:
            prefix, name = prepared
            short, cfg = context.rewrite(prefix, name, plan.config)  # type: ignore[union-attr]
            stream = self._inner.generate_content_stream(model=model, contents=short, config=cfg)
        else:
            stream = self._inner.generate_content_stream(
                model=model, contents=contents, config=plan.config
            )
        seen: list[Response] = []
        for chunk in stream:
            seen.append(chunk)
            yield chunk
        if prepared is not None and seen:
            _account(context, prepared[0], prepared[1], seen[-1])
        if key is not None and _served_by_asked(self._guard, model):
            entry = cache.encode(model, seen, stream=True)
            if entry is not None:
                cache.keep(key, entry, plan.ttl, stream=True)


class AsyncCachedModels:
    """`guard.aio.models` with the response cache in front."""

    def __init__(self, guard: Guard, inner: AsyncGuardedModels, cache: ResponseCache) -> None:
        self._guard = guard
        self._inner = inner
        self.cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _send(self, model: str, contents: Any, config: Any) -> Response:
        context = self.cache.context
        prepared = await context.aprepare(model, contents, config) if context else None
        if prepared is None:
            return await self._inner.generate_content(model=model, contents=contents, config=config)
        prefix, name = prepared
        short, cfg = context.rewrite(prefix, name, config)  # type: ignore[union-attr]
        try:
            response = await self._inner.generate_content(model=model, contents=short, config=cfg)
        except RequestRejected:
            context.rejected(name)  # type: ignore[union-attr]
            return await self._inner.generate_content(model=model, contents=contents, config=config)
        _account(context, prefix, name, response)
        return response

    async def generate_content(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> Response:
        cache = self.cache
        plan = cache.plan(model, contents, config)
        key = plan.key
        if key is None:
            return await self._send(model, contents, plan.config)
        hit = await cache.alookup(key)
        if hit is not None:
            served, (response,) = hit
            self._guard._finish(response, _hit_info(served))
            return response

        async def call() -> tuple[Response, Entry | None]:
            cache.miss()
            response = await self._send(model, contents, plan.config)
            entry = None
            if _served_by_asked(self._guard, model):
                entry = cache.encode(model, [response], stream=False)
                if entry is not None:
                    await cache.akeep(key, entry, plan.ttl, stream=False)
            return response, entry

        if not cache.config.coalesce:
            return (await call())[0]
        (response, entry), shared = await cache.async_coalescer.run(key, call)
        if not shared or entry is None:
            return response
        served, (copy,) = cache.answer(key, entry, coalesced=True)
        self._guard._finish(copy, _hit_info(served))
        return copy

    async def generate_content_stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> AsyncIterator[Response]:
        cache = self.cache
        plan = cache.plan(model, contents, config, stream=True)
        key = plan.key
        if key is not None:
            hit = await cache.alookup(key)
            if hit is not None:
                served, chunks = hit
                return _replay(self._guard, served, chunks)
            cache.miss()
        context = cache.context
        prepared = await context.aprepare(model, contents, plan.config) if context else None
        if prepared is not None:
            short, cfg = context.rewrite(prepared[0], prepared[1], plan.config)  # type: ignore[union-attr]
            stream = await self._inner.generate_content_stream(
                model=model, contents=short, config=cfg
            )
        else:
            stream = await self._inner.generate_content_stream(
                model=model, contents=contents, config=plan.config
            )
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
        if prepared is not None and seen and cache.context is not None:
            _account(cache.context, prepared[0], prepared[1], seen[-1])
        if plan.key is not None and _served_by_asked(self._guard, model):
            entry = cache.encode(model, seen, stream=True)
            if entry is not None:
                await cache.akeep(plan.key, entry, plan.ttl, stream=True)


async def _replay(guard: Guard, served: str, chunks: list[Response]) -> AsyncIterator[Response]:
    for chunk in chunks:
        guard._finish(chunk, _hit_info(served))
        yield chunk


def _account(context: Any, prefix: Prefix, name: str, response: Response) -> None:
    context.used(prefix, name, response)
