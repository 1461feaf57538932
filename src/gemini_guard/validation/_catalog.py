"""What the validator knows about models: `ModelInfo`, and `ModelCatalog`, a cached models.list.

`models.list` is one free request (it does not count against the generate quota), but
calling it before every request would still double the traffic; the catalog keeps the
list for a TTL read from the injected `Clock`, and keeps serving the last good list
when a refresh fails (a flaky network must not turn every request into a 404 guess).
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gemini_guard.tiers import ModelSpec

if TYPE_CHECKING:
    from google import genai

    from gemini_guard.clock import Clock

__all__ = ["ModelCatalog", "ModelInfo"]

GENERATE_CONTENT = "generateContent"


def _seconds(value: float | datetime.timedelta) -> float:
    return value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model as the API describes it; None where the source does not say."""

    name: str  # without the "models/" prefix
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    supported_actions: tuple[str, ...] = ()  # empty: unknown
    max_temperature: float | None = None
    display_name: str | None = None

    @property
    def can_generate(self) -> bool:
        """False only when the API lists the model's methods and generateContent is not one."""
        return not self.supported_actions or GENERATE_CONTENT in self.supported_actions

    @classmethod
    def from_api(cls, model: Any) -> ModelInfo:
        """From an SDK `types.Model` or a REST models.get / models.list entry (a dict)."""
        if isinstance(model, ModelInfo):
            return model
        if isinstance(model, ModelSpec):
            return cls.from_spec(model)
        if not isinstance(model, Mapping):
            model = model.model_dump(by_alias=True, exclude_none=True)

        def pick(*keys: str) -> Any:
            return next((model[k] for k in keys if model.get(k) is not None), None)

        name = pick("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a model entry needs a non-empty 'name'; got {model!r:.200}")
        actions = pick("supportedActions", "supported_actions", "supportedGenerationMethods")
        in_limit = pick("inputTokenLimit", "input_token_limit")
        out_limit = pick("outputTokenLimit", "output_token_limit")
        max_temp = pick("maxTemperature", "max_temperature")
        return cls(
            name=name.removeprefix("models/"),
            input_token_limit=int(in_limit) if in_limit is not None else None,
            output_token_limit=int(out_limit) if out_limit is not None else None,
            supported_actions=tuple(str(a) for a in actions or ()),
            max_temperature=float(max_temp) if max_temp is not None else None,
            display_name=pick("displayName", "display_name"),
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ModelInfo:
        """From the shipped model table (token limits and methods)."""
        return cls(
            name=spec.name,
            input_token_limit=spec.input_token_limit,
            output_token_limit=spec.output_token_limit,
            supported_actions=spec.methods,
        )


class ModelCatalog:
    """The models a key can use, from `fetch()` (a models.list), cached for `ttl` seconds.

    `fetch` returns SDK `types.Model` objects, REST dicts or `ModelInfo`s. Time is read
    only from `clock`. A failed refresh keeps the previous list and is retried after
    `retry_after_error`; with no list at all, `models()` returns None and the validator
    falls back to the shipped model table.
    """

    def __init__(
        self,
        fetch: Callable[[], Iterable[Any]],
        *,
        clock: Clock,
        ttl: float | datetime.timedelta = 3600.0,
        retry_after_error: float | datetime.timedelta = 60.0,
        afetch: Callable[[], Awaitable[Iterable[Any]]] | None = None,
    ) -> None:
        self._fetch = fetch
        self._afetch = afetch
        self._clock = clock
        self._ttl = _seconds(ttl)
        self._retry_after_error = _seconds(retry_after_error)
        if self._ttl < 0 or self._retry_after_error < 0:
            raise ValueError("ttl and retry_after_error must be >= 0 seconds")
        self._lock = threading.Lock()
        self._models: dict[str, ModelInfo] | None = None
        self._next_refresh = float("-inf")
        self.last_error: Exception | None = None
        self.fetches = 0

    @classmethod
    def from_client(
        cls,
        client: genai.Client,
        *,
        clock: Clock,
        ttl: float | datetime.timedelta = 3600.0,
        retry_after_error: float | datetime.timedelta = 60.0,
    ) -> ModelCatalog:
        """A catalog refreshed with `client.models.list()` (every page)."""

        async def afetch() -> list[Any]:
            return [model async for model in await client.aio.models.list()]

        return cls(
            lambda: list(client.models.list()),
            clock=clock,
            ttl=ttl,
            retry_after_error=retry_after_error,
            afetch=afetch,
        )

    @classmethod
    def of(cls, models: Iterable[Any], *, clock: Clock | None = None) -> ModelCatalog:
        """A fixed catalog of `models` (never refreshed): for tests and offline use."""
        from gemini_guard.clock import SystemClock

        fixed = [ModelInfo.from_api(m) for m in models]
        return cls(lambda: fixed, clock=clock or SystemClock(), ttl=float("inf"))

    def models(self) -> Mapping[str, ModelInfo] | None:
        """The models by bare name, refreshed when older than the TTL; None if never fetched."""
        with self._lock:
            now = self._clock.monotonic()
            if now >= self._next_refresh:
                self._refresh(now)
            return self._models

    async def arefresh(self) -> None:
        """Refresh now if stale, without blocking the event loop.

        Async callers await this before a (sync) validation, which then reads the cache
        without I/O. Uses `afetch` when given, else runs `fetch` in a worker thread.
        """
        with self._lock:
            now = self._clock.monotonic()
            if now < self._next_refresh:
                return
            # Claim the refresh so concurrent tasks do not all fetch at once.
            self._next_refresh = now + self._retry_after_error
            self.fetches += 1
        try:
            if self._afetch is not None:
                raw = await self._afetch()
            else:
                raw = await asyncio.to_thread(lambda: list(self._fetch()))
            fetched = {info.name: info for info in map(ModelInfo.from_api, raw)}
        except Exception as exc:  # keep what we had, as the sync path does
            with self._lock:
                self.last_error = exc
            return
        with self._lock:
            self._models = fetched
            self.last_error = None
            self._next_refresh = self._clock.monotonic() + self._ttl

    def get(self, name: str) -> ModelInfo | None:
        """The model called `name` ("models/" prefix allowed), or None if not listed."""
        models = self.models()
        return None if models is None else models.get(name.removeprefix("models/"))

    def invalidate(self) -> None:
        """Refetch on the next lookup (e.g. after the API answered 404 for a listed model)."""
        with self._lock:
            self._next_refresh = float("-inf")

    def _refresh(self, now: float) -> None:
        self.fetches += 1
        try:
            fetched = {info.name: info for info in map(ModelInfo.from_api, self._fetch())}
        except Exception as exc:  # any failure of the list call: keep what we had
            self.last_error = exc
            self._next_refresh = now + self._retry_after_error
            return
        self._models = fetched
        self.last_error = None
        self._next_refresh = now + self._ttl
