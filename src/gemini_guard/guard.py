"""`Guard`: the google-genai client's shape, with retries, fallback and breakers inside.

    guard = Guard(client=genai.Client(), models=["gemini-2.5-pro", "gemini-2.5-flash"])
    r = guard.models.generate_content(model="gemini-2.5-pro", contents="hi")
    r = await guard.aio.models.generate_content(model="gemini-2.5-pro", contents="hi")
    for chunk in guard.models.generate_content_stream(model=..., contents=...): ...
    async for chunk in await guard.aio.models.generate_content_stream(model=..., contents=...): ...

Same arguments as the SDK, same return types (the SDK's own response objects, not
copies or subclasses). Which model answered and how many attempts it took is told
without touching those objects:
- `response.model_version` is the server's own answer (set by the SDK);
- `gemini_guard.guard_info(response)` returns the `CallInfo` of the call that produced
  `response` (model, attempts, elapsed), kept in a weak side table;
- `gemini_guard.last_call()` returns the `CallInfo` of the latest guarded call of the
  current thread or asyncio task (failed calls included).
SDK response types are pydantic models with `extra="forbid"`; setting an attribute on
them would survive by accident, not by contract, so the Guard does not.
"""

from __future__ import annotations

import contextvars
import math
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from google.genai import types

from gemini_guard.clock import Clock, SystemClock
from gemini_guard.diagnosis import diagnose
from gemini_guard.errors import CallFailed, ConfigError, StreamInterrupted
from gemini_guard.pipeline import AttemptPlan, CallInfo, Engine, Steps, run_async, run_sync
from gemini_guard.policies import (
    BreakerPolicy,
    BreakerStore,
    MemoryBreakerStore,
    RetryBudget,
    RetryPolicy,
)
from gemini_guard.quota_gate import QuotaGate
from gemini_guard.telemetry import (
    CallFailedEvent,
    LoggingSink,
    PreflightProblems,
    Sink,
    Telemetry,
)
from gemini_guard.tiers import TIERS
from gemini_guard.tokens import estimate_tokens
from gemini_guard.validation import ModelSource, Problem, ValidationMode, preflight

if TYPE_CHECKING:
    from google import genai

__all__ = ["Guard", "guard_info", "last_call", "wrap"]

# The preflight seam: (model, contents, config) -> None, raising RequestRejected when
# the request cannot succeed. The validation module plugs in here.
Validator = Callable[[str, Any, Any], None]

_last_call: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar(
    "gemini_guard_last_call", default=None
)
_infos: dict[int, CallInfo] = {}
_infos_lock = threading.Lock()


def last_call() -> CallInfo | None:
    """The `CallInfo` of the latest guarded call in this thread or asyncio task."""
    return _last_call.get()


def guard_info(response: object) -> CallInfo | None:
    """The `CallInfo` of the guarded call that returned `response` (None if unknown).

    For a stream, every chunk of it maps to the call's info.
    """
    with _infos_lock:
        return _infos.get(id(response))


def _remember(response: object, info: CallInfo) -> None:
    key = id(response)
    with _infos_lock:
        _infos[key] = info
    try:
        weakref.finalize(response, _forget, key)
    except TypeError:  # not weak-referenceable: keep only last_call()
        _forget(key)


def _forget(key: int) -> None:
    with _infos_lock:
        _infos.pop(key, None)


def _failed_info(error: CallFailed) -> CallInfo:
    return CallInfo(call_id="", model=None, attempts=error.attempts, elapsed=0.0)


def _bare(model: str) -> str:
    return model.removeprefix("models/")


def _input_tokens(response: object) -> int | None:
    usage = getattr(response, "usage_metadata", None)
    count = getattr(usage, "prompt_token_count", None)
    return count if isinstance(count, int) else None


def _stream_input_tokens(pair: tuple[object, object]) -> int | None:
    return _input_tokens(pair[0])


def _no_tokens(response: object) -> None:
    return None


def _chunk_text(chunk: types.GenerateContentResponse) -> str:
    # Read the parts directly: `.text` logs a warning for non-text parts.
    parts = []
    for candidate in chunk.candidates or ()[:1]:
        content = candidate.content
        for part in (content.parts if content else None) or ():
            if part.text and not part.thought:
                parts.append(part.text)
        break
    return "".join(parts)


_THINKING_2_5 = re.compile(r"gemini-2\.5")
_THINKING_LEVELS = re.compile(r"gemini-[3-9]")


class Guard:
    """A guarded google-genai client: same calls, kept working through the API's errors.

    - `client`: a `google.genai.Client` (made from `api_key` or the environment if None).
    - `models`: the fallback chain; a call's `model=` is tried first, then these in order.
    - `tier`: the project's tier ("free", "tier1", "tier2", "tier3"), for the quota gate.
    - `retry`, `breaker`: the policies (`RetryPolicy.INTERACTIVE`, `.BATCH` are presets).
    - `clock`: where time comes from (`FakeClock` in tests, `ScaledClock` in demos).
    - `hooks`: callables receiving every telemetry event (`gemini_guard.telemetry`).
    - `store`: where breaker state lives: "memory://" or a `BreakerStore`.
    - `quota`: a `QuotaGate` to pace requests (None: no pacing).
    - `project`: the name breakers and quota are kept under.
    - `validation`: local checks of each request before it is sent (field names, ranges,
      model names, token limits; see `gemini_guard.validation`). "strict" (default)
      raises `RequestRejected` and sends nothing when the API would reject it; "warn"
      sends anyway and emits a `PreflightProblems` event; "off" skips the checks. A
      callable `(model, contents, config) -> None` replaces the checks.
    - `catalog`: where "strict"/"warn" learn which models exist (a `ModelCatalog`);
      without one, unknown model names are left to the server.
    - `log`: also send events to the "gemini_guard" logger (DEBUG, failures at INFO).
    - `seed`: seeds the backoff jitter (reproducible runs).
    """

    def __init__(
        self,
        *,
        client: genai.Client | None = None,
        api_key: str | None = None,
        models: Sequence[str] = (),
        tier: str = "free",
        retry: RetryPolicy = RetryPolicy.DEFAULT,
        breaker: BreakerPolicy | None = None,
        clock: Clock | None = None,
        hooks: Sequence[Sink] = (),
        store: str | BreakerStore = "memory://",
        quota: QuotaGate | None = None,
        project: str = "default",
        validation: ValidationMode | Validator = "strict",
        catalog: ModelSource | None = None,
        log: bool = True,
        seed: int | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        if isinstance(models, str):
            raise ConfigError(
                f"models must be a list of model names, got the string {models!r}; "
                f"write models=[{models!r}]"
            )
        if tier not in TIERS:
            raise ConfigError(f"tier {tier!r} is not one of: {', '.join(TIERS)}")
        if client is None:
            from google import genai

            client = genai.Client(api_key=api_key) if api_key else genai.Client()
        self.client = client
        # The client's own timeout (ms), if it has one. The SDK spends about a
        # millisecond converting any per-request config, so when the client's timeout
        # already bounds an attempt the Guard sends no config of its own.
        self._client_timeout_ms: int | None = getattr(
            getattr(getattr(client, "_api_client", None), "_http_options", None), "timeout", None
        )
        self.chain: tuple[str, ...] = tuple(_bare(m) for m in models)
        self.tier = tier
        self.clock: Clock = clock if clock is not None else SystemClock()
        sinks: list[Sink] = list(hooks)
        if log:
            sinks.append(LoggingSink(level=10, failure_level=20))
        self.telemetry = Telemetry(sinks)
        self.telemetry.add_secret(api_key)
        self.telemetry.add_secret(getattr(getattr(client, "_api_client", None), "api_key", None))
        self._validation_mode = validation if isinstance(validation, str) else "custom"
        self.validate = (
            validation
            if callable(validation)
            else preflight(validation, catalog=catalog, on_problems=self._report_problems)
        )
        import random

        self.engine = Engine(
            clock=self.clock,
            retry=retry,
            breaker=breaker if breaker is not None else BreakerPolicy(),
            breaker_store=_breaker_store(store),
            telemetry=self.telemetry,
            quota=quota,
            project=project,
            budget=budget,
            rng=random.Random(seed),
        )
        self.models = GuardedModels(self)
        self.aio = GuardedAio(self)

    @property
    def retry(self) -> RetryPolicy:
        return self.engine.retry

    @property
    def breaker(self) -> BreakerPolicy:
        return self.engine.breaker_policy

    @classmethod
    def from_config(cls, path: str | None = None, **overrides: Any) -> Guard:
        """A Guard built from `gemini-guard.toml` (or `path`) and GEMINI_GUARD_* env vars."""
        from gemini_guard.config import load_config

        guard: Guard = load_config(path).build_guard(**overrides)
        return guard

    # -- request plumbing ---------------------------------------------------------

    def _chain(self, model: str) -> tuple[str, ...]:
        first = _bare(model)
        return (first, *(m for m in self.chain if m != first))

    def _report_problems(self, model: str, problems: list[Problem]) -> None:
        self.telemetry.emit(
            PreflightProblems(
                timestamp=self.clock.time(),
                call_id="",  # reported before the call starts
                model=model,
                problems=tuple(str(p) for p in problems),
                rejected=self._validation_mode == "strict" and any(p.is_error for p in problems),
            )
        )

    def _preflight(self, model: str, contents: Any, config: Any) -> None:
        if self.validate is not None:
            self.validate(model, contents, config)

    def _timeout_ms(self, plan: AttemptPlan) -> int | None:
        if plan.timeout is None:
            return None
        # The HTTP client counts real seconds; the plan counts clock seconds.
        factor = float(getattr(self.clock, "factor", 1.0))
        wanted = max(1, math.ceil(plan.timeout / factor * 1000))
        if self._client_timeout_ms is not None and self._client_timeout_ms <= wanted:
            return None  # the client's own timeout is as strict: nothing to add
        return wanted

    def _config(self, config: Any, plan: AttemptPlan, cls: type[Any]) -> Any:
        """The caller's config for this attempt: its timeout, shrunk if asked."""
        timeout = self._timeout_ms(plan)
        if timeout is None and not plan.shrink:
            return config
        if config is None:
            cfg = cls()
        elif isinstance(config, dict):
            cfg = cls.model_validate(config)
        else:
            cfg = config.model_copy()
        if timeout is not None:
            http = cfg.http_options
            if http is None:
                http = types.HttpOptions(timeout=timeout)
            else:
                http = types.HttpOptions.model_validate(http) if isinstance(http, dict) else http
                own = http.timeout
                http = http.model_copy(update={"timeout": min(own, timeout) if own else timeout})
            cfg = cfg.model_copy(update={"http_options": http})
        if plan.shrink and isinstance(cfg, types.GenerateContentConfig):
            cfg = self._shrunk(cfg, plan.model)
        return cfg

    def _shrunk(self, cfg: types.GenerateContentConfig, model: str) -> types.GenerateContentConfig:
        policy = self.engine.retry
        cap = policy.shrunk_max_output_tokens
        update: dict[str, Any] = {
            "max_output_tokens": min(cfg.max_output_tokens, cap) if cfg.max_output_tokens else cap
        }
        thinking = cfg.thinking_config or types.ThinkingConfig()
        if thinking.thinking_level is not None or (
            thinking.thinking_budget is None and _THINKING_LEVELS.search(model)
        ):
            update["thinking_config"] = thinking.model_copy(
                update={"thinking_level": types.ThinkingLevel.LOW}
            )
        elif thinking.thinking_budget is not None or _THINKING_2_5.search(model):
            budget = policy.shrunk_thinking_budget
            own = thinking.thinking_budget
            # -1 asks for dynamic thinking; 0 turns it off (already the smallest).
            new = budget if own is None or own < 0 else min(own, budget)
            update["thinking_config"] = thinking.model_copy(update={"thinking_budget": new})
        return cfg.model_copy(update=update)

    def _finish(self, response: object, info: CallInfo) -> None:
        _last_call.set(info)
        _remember(response, info)

    def _stream_failed(
        self, model: str, info: CallInfo, exc: Exception, partial: str
    ) -> StreamInterrupted:
        diagnosis = diagnose(exc, now=self.clock.time())
        self.telemetry.emit(
            CallFailedEvent(
                timestamp=self.clock.time(),
                call_id=info.call_id,
                model=model,
                http_status=diagnosis.http_status,
                grpc_status=diagnosis.grpc_status,
                category=str(diagnosis.category),
                message=diagnosis.message,
                error="StreamInterrupted",
                reason="the stream broke after its first chunk",
                attempts=info.attempt_count,
                elapsed=info.elapsed,  # up to the first chunk
            )
        )
        return StreamInterrupted(
            f"the stream from {model} broke after {len(partial)} characters: "
            f"{diagnosis.category} ({diagnosis.http_status or '-'})",
            diagnosis=diagnosis,
            attempts=info.attempts,
            partial_text=partial,
        )


def _breaker_store(store: str | BreakerStore) -> BreakerStore:
    if not isinstance(store, str):
        return store
    if store == "memory://":
        return MemoryBreakerStore()
    raise ConfigError(
        f"store {store!r} is not available for breaker state yet; allowed: 'memory://' "
        "or a BreakerStore object"
    )


class GuardedModels:
    """`guard.models`: `generate_content`, `generate_content_stream`, `count_tokens`."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def generate_content(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> types.GenerateContentResponse:
        g = self._guard
        g._preflight(model, contents, config)
        engine = g.engine

        def send(plan: AttemptPlan) -> types.GenerateContentResponse:
            return g.client.models.generate_content(
                model=plan.model,
                contents=contents,
                config=g._config(config, plan, types.GenerateContentConfig),
            )

        steps: Steps[types.GenerateContentResponse] = engine.steps(
            g._chain(model), tokens=estimate_tokens(contents), input_tokens_of=_input_tokens
        )
        try:
            response, info = run_sync(steps, clock=g.clock, quota=engine.quota, send=send)
        except CallFailed as error:
            _last_call.set(_failed_info(error))
            raise
        g._finish(response, info)
        return response

    def generate_content_stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> Iterator[types.GenerateContentResponse]:
        g = self._guard
        g._preflight(model, contents, config)
        engine = g.engine
        Pair = tuple[types.GenerateContentResponse | None, Iterator[types.GenerateContentResponse]]

        def send(plan: AttemptPlan) -> Pair:
            stream = iter(
                g.client.models.generate_content_stream(
                    model=plan.model,
                    contents=contents,
                    config=g._config(config, plan, types.GenerateContentConfig),
                )
            )
            # Errors before the first chunk are retried and fall back like any call.
            return next(stream, None), stream

        steps: Steps[Pair] = engine.steps(
            g._chain(model),
            tokens=estimate_tokens(contents),
            input_tokens_of=_stream_input_tokens,
        )
        try:
            (first, rest), info = run_sync(steps, clock=g.clock, quota=engine.quota, send=send)
        except CallFailed as error:
            _last_call.set(_failed_info(error))
            raise
        _last_call.set(info)
        if first is None:
            return
        served = info.model or model
        partial = [_chunk_text(first)]
        _remember(first, info)
        yield first
        try:
            for chunk in rest:
                _remember(chunk, info)
                partial.append(_chunk_text(chunk))
                yield chunk
        except Exception as exc:
            raise g._stream_failed(served, info, exc, "".join(partial)) from exc

    def count_tokens(
        self,
        *,
        model: str,
        contents: types.ContentListUnion | types.ContentListUnionDict,
        config: types.CountTokensConfigOrDict | None = None,
    ) -> types.CountTokensResponse:
        """Counted by `model` only (another model's count would be another answer);
        retried, and not paced (countTokens has its own, much larger quota)."""
        g = self._guard

        def send(plan: AttemptPlan) -> types.CountTokensResponse:
            return g.client.models.count_tokens(
                model=plan.model,
                contents=contents,
                config=g._config(config, plan, types.CountTokensConfig),
            )

        steps: Steps[types.CountTokensResponse] = g.engine.steps(
            (_bare(model),), tokens=0, input_tokens_of=_no_tokens, use_quota=False
        )
        try:
            response, info = run_sync(steps, clock=g.clock, quota=g.engine.quota, send=send)
        except CallFailed as error:
            _last_call.set(_failed_info(error))
            raise
        g._finish(response, info)
        return response


class GuardedAio:
    """`guard.aio`: the asyncio side, like `client.aio`."""

    def __init__(self, guard: Guard) -> None:
        self.models = AsyncGuardedModels(guard)


class AsyncGuardedModels:
    """`guard.aio.models`: the same three calls for asyncio."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def generate_content(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> types.GenerateContentResponse:
        g = self._guard
        g._preflight(model, contents, config)
        engine = g.engine

        async def send(plan: AttemptPlan) -> types.GenerateContentResponse:
            return await g.client.aio.models.generate_content(
                model=plan.model,
                contents=contents,
                config=g._config(config, plan, types.GenerateContentConfig),
            )

        steps: Steps[types.GenerateContentResponse] = engine.steps(
            g._chain(model), tokens=estimate_tokens(contents), input_tokens_of=_input_tokens
        )
        try:
            response, info = await run_async(steps, clock=g.clock, quota=engine.quota, send=send)
        except CallFailed as error:
            _last_call.set(_failed_info(error))
            raise
        g._finish(response, info)
        return response

    async def generate_content_stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        g = self._guard
        g._preflight(model, contents, config)
        engine = g.engine
        Pair = tuple[
            types.GenerateContentResponse | None, AsyncIterator[types.GenerateContentResponse]
        ]

        async def send(plan: AttemptPlan) -> Pair:
            stream = await g.client.aio.models.generate_content_stream(
                model=plan.model,
                contents=contents,
                config=g._config(config, plan, types.GenerateContentConfig),
            )
            iterator = aiter(stream)
            try:
                return await anext(iterator), iterator
            except StopAsyncIteration:
                return None, iterator

        steps: Steps[Pair] = engine.steps(
            g._chain(model),
            tokens=estimate_tokens(contents),
            input_tokens_of=_stream_input_tokens,
        )
        try:
            (first, rest), info = await run_async(
                steps, clock=g.clock, quota=engine.quota, send=send
            )
        except CallFailed as error:
            _last_call.set(_failed_info(error))
            raise
        _last_call.set(info)
        return self._relay(first, rest, info, info.model or model)

    async def _relay(
        self,
        first: types.GenerateContentResponse | None,
        rest: AsyncIterator[types.GenerateContentResponse],
        info: CallInfo,
        served: str,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        if first is None:
            return
        partial = [_chunk_text(first)]
        _remember(first, info)
        yield first
        try:
            async for chunk in rest:
                _remember(chunk, info)
                partial.append(_chunk_text(chunk))
                yield chunk
        except Exception as exc:
            raise self._guard._stream_failed(served, info, exc, "".join(partial)) from exc

    async def count_tokens(
        self,
        *,
        model: str,
        contents: types.ContentListUnion | types.ContentListUnionDict,
        config: types.CountTokensConfigOrDict | None = None,
    ) -> types.CountTokensResponse:
        g = self._guard

        async def send(plan: AttemptPlan) -> types.CountTokensResponse:
            return await g.client.aio.models.count_tokens(
                model=plan.model,
                contents=contents,
                config=g._config(config, plan, types.CountTokensConfig),
            )

        steps: Steps[types.CountTokensResponse] = g.engine.steps(
            (_bare(model),), tokens=0, input_tokens_of=_no_tokens, use_quota=False
        )
        try:
            response, info = await run_async(steps, clock=g.clock, quota=g.engine.quota, send=send)
        except CallFailed as error:
            _last_call.set(_failed_info(error))
            raise
        g._finish(response, info)
        return response


def wrap(client: genai.Client, **options: Any) -> Guard:
    """Guard an existing `google.genai.Client`: `wrap(client, models=[...])`."""
    return Guard(client=client, **options)
