"""`Guard`: the google-genai client's shape, with retries, fallback and breakers inside.

    guard = Guard(client=genai.Client(), models=["gemini-2.5-pro", "gemini-2.5-flash"])
    r = guard.models.generate_content(model="gemini-2.5-pro", contents="hi")
    r = await guard.aio.models.generate_content(model="gemini-2.5-pro", contents="hi")
    for chunk in guard.models.generate_content_stream(model=..., contents=...): ...
    async for chunk in await guard.aio.models.generate_content_stream(model=..., contents=...): ...

Same arguments as the SDK, same return types (the SDK's own response objects, not
copies or subclasses): `guard.models` makes its calls on `guard.client`, a real
`genai.Client` whose HTTP goes through the Guard's path (`gemini_guard.call`), so the SDK
builds every answer from the reply as it would for a bare call. Which model answered
and how many attempts it took is told without touching those objects:
- `response.model_version` is the server's own answer (set by the SDK);
- `gemini_guard.guard_info(response)` returns the `CallInfo` of the call that produced
  `response` (model, attempts, elapsed), kept in a weak side table;
- `gemini_guard.last_call()` returns the `CallInfo` of the latest guarded call of the
  current thread or asyncio task (failed calls included).
SDK response types are pydantic models with `extra="forbid"`; setting an attribute on
them would survive by accident, not by contract, so the Guard does not.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from google.genai import types

from gemini_guard.call import (
    CallInfo,
    Engine,
    NoQuota,
    QuotaGate,
)
from gemini_guard.call.info import guard_info, last_call, remember, set_last_call
from gemini_guard.call.transport import checked_request
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.diagnosis import Category, diagnose
from gemini_guard.errors import (
    CallFailed,
    ConfigError,
    ResponseBlocked,
    StreamInterrupted,
    StreamStalled,
)
from gemini_guard.policies import (
    BreakerPolicy,
    BreakerStore,
    MemoryBreakerStore,
    RetryBudget,
    RetryPolicy,
)
from gemini_guard.policies.breaker_stores import open_breaker_store
from gemini_guard.secrets import scrubbed
from gemini_guard.telemetry import (
    CallFailedEvent,
    LoggingSink,
    PreflightProblems,
    Sink,
    Telemetry,
    quota_notice,
)
from gemini_guard.telemetry.extras import plug_in
from gemini_guard.telemetry.spend import Spending, Usage, free_call, usage_of
from gemini_guard.tiers import TIERS, Limits
from gemini_guard.tokens.counter import (
    TokenCounter,
    TokenCounterChoice,
    estimate,
    make_token_counter,
)
from gemini_guard.validation import ModelSource, Problem, ValidationMode, preflight

if TYPE_CHECKING:
    from google import genai

    from gemini_guard.cache import ResponseCache
    from gemini_guard.cache.scope import CacheScope
    from gemini_guard.cache.settings import CacheConfig
    from gemini_guard.call.cache_stage import CacheStage
    from gemini_guard.config import GuardConfig
    from gemini_guard.quota.pool import Project, ProjectPool
    from gemini_guard.telemetry.alerts import Alerts
    from gemini_guard.telemetry.prometheus import PrometheusMetrics
    from gemini_guard.telemetry.spend import SpendReport

__all__ = ["Guard", "guard_from_config", "guard_info", "last_call", "wrap"]

# The preflight seam: (model, contents, config) -> None, raising RequestRejected when
# the request cannot succeed. The validation module plugs in here.
Validator = Callable[[str, Any, Any], None]


def _bare(model: str) -> str:
    return model.removeprefix("models/")


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


_TIER_CHOICES: tuple[str, ...] = ("auto", *TIERS)
_log = logging.getLogger("gemini_guard")


class Guard:
    """A guarded google-genai client: same calls, kept working through the API's errors.

    - `client`: a `google.genai.Client` (made from `api_key`, else the first key of
      `projects`, else the environment, if None).
    - `base_url`: where the client the Guard makes sends (an emulator, a gateway);
      with `client=` given, set it on that client instead.
    - `models`: the fallback chain; a call's `model=` is tried first, then these in order.
    - `tier`: the project's tier, for quota pacing: "auto" (default: pace only once a
      429 has revealed the limits, so a paid project is never slowed to free-tier
      rates by a guess), or "free", "tier1", "tier2", "tier3" (pace by that table).
    - `retry`, `breaker`: the policies (`RetryPolicy.INTERACTIVE`, `.BATCH` are presets).
    - `clock`: where time comes from (`FakeClock` in tests, `ScaledClock` in demos).
    - `hooks`: callables receiving every telemetry event (`gemini_guard.telemetry`).
    - `store`: where quota ledgers and breaker state live, by URL: "memory://" (this
      process), "sqlite:///path.db" (processes of one host), "redis://host:port/db"
      (many hosts); or a `BreakerStore` (breakers there, quotas in memory).
    - `quota`: None (default) paces every attempt with a gate the Guard builds, owns
      and closes: a `QuotaLimiter` over `store` for `tier`, or a `ProjectPool` of
      `projects`; its events (a limit learned, the store down) are the Guard's
      telemetry. False turns pacing off; or any `QuotaGate` of your own.
    - `quota_limits`: per-model figures over the tier table, for the gate the Guard
      builds: `{"gemini-2.5-pro": {"rpm": 2}}` replaces only the figures named.
    - `quota_max_wait`: the longest an attempt may wait for quota, in seconds (None:
      as long as needed); a longer wait raises `QuotaWait` and books nothing.
    - `projects`: several Google Cloud projects (`gemini_guard.quota.Project`s or
      mappings with name, keys, tier, limits): the Guard paces them as one
      `ProjectPool`, which picks the project of each attempt (they take turns among
      those that can send now), and sends with one of that project's keys. A
      project's own `limits` (provisioned throughput) lie over `quota_limits`.
      `quota_limits`, `quota_max_wait` and `projects` shape the gate the Guard
      builds: with `quota=False` or a gate of your own they are refused.
    - `project`: the name breakers and quota are kept under. With a pool (`projects`,
      or a `ProjectPool` as `quota`) the pool chooses unless a project is named.
    - `validation`: local checks of each request before it is sent (field names, ranges,
      model names, token limits; see `gemini_guard.validation`). "strict" (default)
      raises `RequestRejected` and sends nothing when the API would reject it; "warn"
      sends anyway and emits a `PreflightProblems` event; "off" skips the checks. A
      callable `(model, contents, config) -> None` replaces the checks.
    - `catalog`: where "strict"/"warn" learn which models exist (a `ModelCatalog`);
      without one, unknown model names are left to the server.
    - `log`: also send events to the "gemini_guard" logger (DEBUG, failures at INFO).
    - `seed`: seeds the backoff jitter (reproducible runs).
    - `cache`: a response cache in front of every call ("memory://", "sqlite:///…",
      "redis://…", a `CacheConfig` or a `ResponseCache`; see `gemini_guard.cache`).
    - `token_counter`: the input tokens a paced call reserves: "estimate" (default,
      offline), "api" (`count_tokens` on `client`, cached per distinct request), or
      a function `(model, contents, config) -> int` (see `gemini_guard.tokens.counter`).
    - `metrics`: Prometheus metrics of this Guard (True, or a `PrometheusMetrics` to
      share); `alerts`: alert rules over its events (True, or an `Alerts` with a
      webhook). See `gemini_guard.telemetry` and docs/telemetry.md.
    - `daily_budget_usd`: refuse calls (`BudgetExceeded`, nothing sent) once the
      day's spend reaches it; `guard.spend()` tells the spend so far.
    """

    def __init__(
        self,
        *,
        client: genai.Client | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        models: Sequence[str] = (),
        tier: str = "auto",
        retry: RetryPolicy = RetryPolicy.DEFAULT,
        breaker: BreakerPolicy | None = None,
        clock: Clock | None = None,
        hooks: Sequence[Sink] = (),
        store: str | BreakerStore = "memory://",
        quota: QuotaGate | bool | None = None,
        quota_limits: Mapping[str, Limits | Mapping[str, object]] | None = None,
        quota_max_wait: float | None = None,
        projects: Sequence[Project | Mapping[str, object]] | None = None,
        project: str = "default",
        validation: ValidationMode | Validator = "strict",
        catalog: ModelSource | None = None,
        log: bool = True,
        seed: int | None = None,
        budget: RetryBudget | None = None,
        cache: str | CacheConfig | ResponseCache | None = None,
        token_counter: TokenCounterChoice = "estimate",
        metrics: PrometheusMetrics | bool = False,
        alerts: Alerts | bool = False,
        daily_budget_usd: float | None = None,
    ) -> None:
        if isinstance(models, str):
            raise ConfigError(
                f"models must be a list of model names, got the string {models!r}; "
                f"write models=[{models!r}]"
            )
        if isinstance(projects, str | Mapping):
            raise ConfigError(
                "projects= must be a list of projects (Project or mappings with name, "
                f"keys, tier, limits), got a {type(projects).__name__}"
            )
        if tier not in _TIER_CHOICES:
            raise ConfigError(f"tier {tier!r} is not one of: {', '.join(_TIER_CHOICES)}")
        if base_url is not None and client is not None:
            raise ConfigError(
                "base_url= is for the client the Guard makes; with client= given, set "
                "the base URL in that client's http_options instead"
            )
        if client is None:
            from google import genai

            if api_key is None and projects:
                api_key = _first_key(projects)
            http = types.HttpOptions(base_url=base_url) if base_url else None
            client = (
                genai.Client(api_key=api_key, http_options=http)
                if api_key
                else genai.Client(http_options=http)
            )
        # The client the Guard was given (or made): its calls are NOT guarded. What
        # users hand to frameworks is `guard.client`, built on it.
        self.unguarded_client = client
        self._guarded_client: genai.Client | None = None
        self._guarded_http: list[Any] = []  # the httpx clients of guard.client
        self.token_counter: TokenCounter = make_token_counter(token_counter, client=client)
        self.chain: tuple[str, ...] = tuple(_bare(m) for m in models)
        self.tier = tier
        self.clock: Clock = clock if clock is not None else SystemClock()
        sinks: list[Sink] = list(hooks)
        if log:
            sinks.append(LoggingSink(level=10, failure_level=20))
        self.telemetry = Telemetry(sinks)
        self.telemetry.add_secret(api_key)
        self.telemetry.add_secret(getattr(getattr(client, "_api_client", None), "api_key", None))
        self.spending = Spending(clock=self.clock, daily_budget_usd=daily_budget_usd)
        self._validation_mode = validation if isinstance(validation, str) else "custom"
        self.validate = (
            validation
            if callable(validation)
            else preflight(validation, catalog=catalog, on_problems=self._report_problems)
        )
        import random

        # What the Guard opened itself, it closes (`close()`); a gate or store passed
        # in belongs to the caller.
        self._owned: list[Any] = []
        breaker_store = self._breaker_store(store)
        try:
            gate = self._quota_gate(
                quota,
                store=store,
                tier=tier,
                limits=quota_limits,
                max_wait=quota_max_wait,
                projects=projects,
            )
            self._pool = _pool_of(gate)
            if self._pool is not None:
                project = self._pool_project(self._pool, project)
        except Exception:
            while self._owned:  # a Guard refused leaves nothing open
                self._owned.pop().close()
            raise
        self.engine = Engine(
            clock=self.clock,
            retry=retry,
            breaker=breaker if breaker is not None else BreakerPolicy(),
            breaker_store=breaker_store,
            telemetry=self.telemetry,
            quota=gate,
            project=project,
            budget=budget,
            rng=random.Random(seed),
        )
        self.metrics, self.alerts, owned = plug_in(self, metrics=metrics, alerts=alerts)
        self._owned.extend(owned)
        self.models = GuardedModels(self)
        self.aio = GuardedAio(self)
        # Response cache (gemini_guard.cache): a stage in front of generate_content.
        self.cache: ResponseCache | None = None
        self._cache_stage: CacheStage | None = None
        self._owns_cache = False
        if cache is not None:
            from gemini_guard.cache import ResponseCache
            from gemini_guard.call.cache_stage import open_cache_stage

            self._cache_stage = open_cache_stage(self, cache, finish=self._finish)
            self.cache = self._cache_stage.cache
            # A cache built here from a URL or config is the Guard's to close; a
            # ResponseCache handed in belongs to the caller.
            self._owns_cache = not isinstance(cache, ResponseCache)

    def _breaker_store(self, store: str | BreakerStore) -> BreakerStore:
        if not isinstance(store, str):
            return store
        opened = open_breaker_store(store, clock=self.clock)
        if not isinstance(opened, MemoryBreakerStore):
            self._owned.append(opened)
        return opened

    def _pool_project(self, pool: ProjectPool, project: str) -> str:
        """The project the engine books under with a pool ("*": the pool chooses);
        the pool's keys are secrets of this Guard's telemetry."""
        names = [member.name for member in pool.projects]
        if project == "default":
            project = "*"  # let the pool choose
        elif project != "*" and project not in names:
            raise ConfigError(
                f"project={project!r} is not in the pool ({', '.join(names)}); name "
                "one of its projects, or leave project= out to let the pool choose"
            )
        for member in pool.projects:
            for key in member.keys:
                self.telemetry.add_secret(key)
        return project

    def _quota_gate(
        self,
        quota: QuotaGate | bool | None,
        *,
        store: str | BreakerStore,
        tier: str,
        limits: Mapping[str, Limits | Mapping[str, object]] | None,
        max_wait: float | None,
        projects: Sequence[Project | Mapping[str, object]] | None,
    ) -> QuotaGate:
        shaping = {"quota_limits": limits, "quota_max_wait": max_wait, "projects": projects}
        given = [f"{name}=" for name, value in shaping.items() if value is not None]
        if quota is not None and quota is not True:
            if given:
                why = (
                    "quota=False turns pacing off" if quota is False else "quota= is your own gate"
                )
                raise ConfigError(
                    f"{', '.join(given)} shape the quota gate the Guard builds, but {why}; "
                    "drop one or the other (a gate of your own takes its limits itself)"
                )
            return NoQuota() if quota is False else quota
        if max_wait is not None and (
            isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not max_wait >= 0
        ):
            raise ConfigError(
                f"quota_max_wait={max_wait!r} must be a number of seconds >= 0 (or None)"
            )
        # The gate's events (a limit learned, the store down) go straight to this
        # Guard's telemetry, from the moment the gate exists.
        options: dict[str, Any] = {
            "store": store if isinstance(store, str) else "memory://",
            "clock": self.clock,
            "tier": tier,
            "limits": _limits_of(limits) if limits is not None else None,
            "max_wait": max_wait,
            "on_event": self._quota_event,
        }
        gate: QuotaGate
        if projects is not None:
            from gemini_guard.quota.pool import ProjectPool

            gate = ProjectPool(projects, **options)
        else:
            from gemini_guard.quota import QuotaLimiter

            gate = QuotaLimiter(**options)
        self._owned.append(gate)
        return gate

    def _quota_event(self, event: object) -> None:
        """The limiter's news (a limit learned, the store down) as telemetry."""
        notice = quota_notice(event)
        if notice is None:
            return
        if notice.notice in ("limit_learned", "store_degraded"):
            # Google changed the limits, or processes no longer share a ledger: loud.
            _log.warning("%s", notice.message)
        self.telemetry.emit(notice)

    @property
    def client(self) -> genai.Client:
        """A real `google.genai.Client` whose every call goes through this Guard:
        `guard.client.models.*`, `.chats`, `.aio.*`, files, batches, caches. Hand it to
        frameworks that take a client. Failed calls raise the Guard's errors, which
        are also the SDK's `ClientError`/`ServerError`; answers carry the headers
        `x-gemini-guard-model` and `x-gemini-guard-attempts`."""
        if self._guarded_client is None:
            self._guarded_client = self._build_guarded_client()
        return self._guarded_client

    def _build_guarded_client(self) -> genai.Client:
        from google import genai

        from gemini_guard.call.transport import (
            AsyncGuardedHttpClient,
            GuardedHttpClient,
            GuardedTransport,
        )

        api = getattr(self.unguarded_client, "_api_client", None)
        ainner: httpx.AsyncBaseTransport | None = None
        try:  # aiohttp where installed, as the SDK itself prefers it for asyncio
            from gemini_guard.call.aiohttp_transport import AiohttpTransport

            ainner = AiohttpTransport()
        except ImportError:
            ainner = None
        transport = GuardedTransport(self, ainner=ainner)
        sync_http = GuardedHttpClient(transport)
        async_http = AsyncGuardedHttpClient(transport)
        self._guarded_http = [sync_http, async_http]
        own = _http_options_of(self.unguarded_client) or types.HttpOptions()
        http = own.model_copy(update={"httpx_client": sync_http, "httpx_async_client": async_http})
        if api is not None and getattr(api, "vertexai", False):
            return genai.Client(
                vertexai=True,
                project=api.project,
                location=api.location,
                credentials=getattr(api, "_credentials", None),
                http_options=http,
            )
        key = getattr(api, "api_key", None)
        return genai.Client(api_key=key, http_options=http)

    # -- what the HTTP-level path asks of its Guard (call.transport.PathOwner) ---------

    def chain_for(self, model: str) -> tuple[str, ...]:
        """The models a call for `model` may try, in order."""
        return self._chain(model)

    def key_for(self, project: str | None) -> str | None:
        """The API key to send an attempt with (None: the request's own)."""
        pool = self._pool
        if pool is None or project is None:
            return None
        return pool.api_key(project)

    def check_request(self, model: str, contents: Any, config: Any, *, priced: bool = True) -> None:
        """Before a wire request is sent: the daily budget (for a request that is
        priced: countTokens is free), and the local checks on its contents and config
        (read into the SDK's types; a shape they do not read is left to the server)."""
        if priced:
            self.spending.check(model)
        if self.validate is None:
            return
        text = _plain_text(contents) if not config else None
        if text is not None:  # the commonest request: the checks' fast path for a prompt
            self.validate(model, text, None)
            return
        try:
            typed_contents = [types.Content.model_validate(c) for c in contents or ()]
            typed_config = types.GenerateContentConfig.model_validate(config) if config else None
        except ValueError:
            return
        self.validate(model, typed_contents, typed_config)

    def finished(self, info: CallInfo, usage: Usage | None, *, failed: bool) -> None:
        """A call of the HTTP-level path ended: tell `last_call()` and, when it
        succeeded, its usage and cost."""
        set_last_call(info)
        if not failed:
            self._record_usage_of(usage, info)

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / float(getattr(self.clock, "factor", 1.0))

    @property
    def quota(self) -> QuotaGate:
        """The gate pacing the attempts (`NoQuota` when pacing is off)."""
        return self.engine.quota

    @property
    def cache_scope(self) -> CacheScope | None:
        """The scope of this Guard's cached answers (None without a cache): whose
        answers its entries are, and the credential that gates its hits."""
        return self._cache_stage.scope if self._cache_stage is not None else None

    def close(self) -> None:
        """Close what the Guard opened itself (its response cache, quota limiter,
        breaker store, the clients of a project pool's keys)."""
        if self.cache is not None and self._owns_cache:
            self.cache.close()  # deletes its context caches and writes its last counts
            self.cache = None
        while self._owned:
            self._owned.pop().close()
        for http in self._guarded_http:
            if isinstance(http, httpx.Client):
                http.close()

    async def aclose(self) -> None:
        """`close`, also closing the asyncio sessions (pool clients, guard.client)."""
        if self.cache is not None and self._owns_cache:
            await self.cache.aclose()
            self.cache = None
        for http in self._guarded_http:
            if isinstance(http, httpx.AsyncClient):
                await http.aclose()
        self.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Guard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

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

        return guard_from_config(load_config(path), **overrides)

    # -- batch (gemini_guard.batch) -----------------------------------------------

    def batch(self, requests: Any, **options: Any) -> Any:
        """Run many requests, yielding one `BatchResult` each as they complete:
        `for r in guard.batch([{"id": "q1", "prompt": "hi"}], concurrency=4): ...`
        (see `gemini_guard.batch.run_batch` for the options)."""
        from gemini_guard.batch import run_batch

        return run_batch(self, requests, **options)

    def abatch(self, requests: Any, **options: Any) -> Any:
        """`batch` for asyncio: `async for r in guard.abatch(requests): ...`."""
        from gemini_guard.batch import arun_batch

        return arun_batch(self, requests, **options)

    # -- end of batch -----------------------------------------------------------------

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

    def _tokens(self, model: str, contents: Any, config: Any) -> int | Callable[[], int]:
        """The input tokens to reserve: counted only when a gate paces. Counted for the
        call's model; the fallback models of the chain reserve the same figure."""
        engine = self.engine
        if not engine.pacing:
            return 0
        model = _bare(model)
        if not engine.paces(model):
            # Nothing to reserve against yet: the attempt is tallied with the
            # server's own count from its answer, so no countTokens request, and the
            # local estimate is made only if the answer does not count (see
            # `Engine.steps`).
            return functools.partial(estimate, contents)
        return self.token_counter.count(model, contents, config)

    async def _atokens(self, model: str, contents: Any, config: Any) -> int | Callable[[], int]:
        """`_tokens` for asyncio callers (an "api" count is a request)."""
        engine = self.engine
        if not engine.pacing:
            return 0
        model = _bare(model)
        if not engine.paces(model):
            return functools.partial(estimate, contents)
        return await self.token_counter.acount(model, contents, config)

    def spend(self) -> SpendReport:
        """USD spent by this Guard's successful calls, by model and by day."""
        return self.spending.report()

    def _preflight(self, model: str, contents: Any, config: Any) -> None:
        self.spending.check(model)
        if self.validate is not None:
            self.validate(model, contents, config)

    def _finish(self, response: object, info: CallInfo) -> None:
        set_last_call(info)
        remember(response, info)
        self._record_usage(response, info)

    def _record_usage(self, response: object, info: CallInfo) -> None:
        """Price the call's usage (the last chunk's, for a stream) and tell it. A call
        without usage (countTokens is free) is told too, as nothing billed: a
        `CallUsage` closes every successful call."""
        self._record_usage_of(usage_of(response), info)

    def _record_usage_of(self, usage: Usage | None, info: CallInfo) -> None:
        if info.model is None:
            return
        project = info.attempts[-1].project if info.attempts else None
        attempts, elapsed = info.attempt_count, info.elapsed
        if usage is None:
            event = free_call(
                info.call_id,
                info.model,
                self.clock.time(),
                project,
                attempts=attempts,
                elapsed=elapsed,
            )
        else:
            event = self.spending.record(
                call_id=info.call_id,
                # priced as the model: a location (`model@global`) does not change it
                model=info.model.partition("@")[0],
                usage=usage,
                project=project,
                attempts=attempts,
                elapsed=elapsed,
            )
        self.telemetry.emit(event)

    def _stream_failed(
        self, model: str, info: CallInfo, exc: Exception, partial: str
    ) -> StreamInterrupted:
        diagnosis = diagnose(exc, now=self.clock.time())
        if isinstance(exc, TimeoutError) or diagnosis.category is Category.TIMEOUT:
            # Silence after the first chunk (the socket's read limit, or the idle
            # timeout on the asyncio path): the stream stalled, it did not break.
            idle = self.engine.retry.stream_idle_timeout
            return StreamStalled(
                f"the stream from {model} went silent"
                + (f" for more than {idle:g}s" if idle else "")
                + f" after {len(partial)} characters (stream_idle_timeout)",
                diagnosis=diagnosis,
                attempts=info.attempts,
                partial_text=partial,
            )
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


def _plain_text(contents: Any) -> str | None:
    """The prompt of wire `contents` that are text parts only (None otherwise): what
    the local checks would read of them, without building the SDK's objects."""
    if not isinstance(contents, list):
        return None
    texts: list[str] = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or set(content) - {"role", "parts"}:
            return None
        for part in parts:
            if not isinstance(part, dict) or set(part) != {"text"}:
                return None
            texts.append(str(part["text"]))
    return "\n".join(texts) if texts else None


# Headers the SDK sets itself from the client's key and version: a client made for
# another key must not inherit them (the key header would win over its own key).
_SDK_HEADERS = frozenset({"x-goog-api-key", "user-agent", "x-goog-api-client", "content-type"})


def _http_options_of(client: genai.Client) -> types.HttpOptions | None:
    """The HTTP options `client` was made with (base URL, timeout, ...), minus its key."""
    http = getattr(getattr(client, "_api_client", None), "_http_options", None)
    if not isinstance(http, types.HttpOptions):
        return None
    headers = {k: v for k, v in (http.headers or {}).items() if k.lower() not in _SDK_HEADERS}
    return http.model_copy(update={"headers": headers or None})


def _pool_of(gate: QuotaGate) -> ProjectPool | None:
    from gemini_guard.quota.pool import ProjectPool

    return gate if isinstance(gate, ProjectPool) else None


class GuardedModels:
    """`guard.models`: `generate_content`, `generate_content_stream`, `count_tokens`.

    The SDK's own calls on `guard.client`: the request goes through the guarded HTTP
    path like every other entry point's, and the SDK builds its typed answer from the
    reply. What this adds is the SDK-shaped part: the response cache's typed stage,
    `guard_info(response)`, a blocked answer as the SDK's object, and a stream that
    breaks after its first chunk told as `StreamInterrupted` with the text so far."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def generate_content(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> types.GenerateContentResponse:
        stage = self._guard._cache_stage
        if stage is None:
            return self._generate(model=model, contents=contents, config=config)
        plan = stage.plan(model, contents, config)
        return stage.generate(plan, model=model, contents=contents, call=self._generate)

    def _generate(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> types.GenerateContentResponse:
        g = self._guard
        g._preflight(model, contents, config)
        try:
            with checked_request(g._tokens(model, contents, config)):
                response = g.client.models.generate_content(
                    model=model, contents=contents, config=config
                )
        except ResponseBlocked as blocked:
            raise _typed_blocked(blocked) from None
        _told(response)
        return response

    def generate_content_stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> Iterator[types.GenerateContentResponse]:
        stage = self._guard._cache_stage
        if stage is None:
            yield from self._stream(model=model, contents=contents, config=config)
            return
        plan = stage.plan(model, contents, config, stream=True)
        yield from stage.stream(plan, model=model, contents=contents, call=self._stream)

    def _stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> Iterator[types.GenerateContentResponse]:
        g = self._guard
        g._preflight(model, contents, config)
        chunks = iter(
            g.client.models.generate_content_stream(model=model, contents=contents, config=config)
        )
        # The request goes out for the first chunk. Failures before it were retried and
        # fell back on the path; what reaches here is the Guard's error, as it is.
        with checked_request(g._tokens(model, contents, config)):
            first = next(chunks, None)
        if first is None:
            return
        info = _told(first)
        partial = [_chunk_text(first)]
        yield first
        try:
            for chunk in chunks:
                remember(chunk, info)
                partial.append(_chunk_text(chunk))
                yield chunk
        except CallFailed:
            raise  # a stall, told by the path as StreamStalled
        except Exception as exc:
            raise g._stream_failed(_served(info, model), info, exc, "".join(partial)) from scrubbed(
                exc
            )

    def count_tokens(
        self,
        *,
        model: str,
        contents: types.ContentListUnion | types.ContentListUnionDict,
        config: types.CountTokensConfigOrDict | None = None,
    ) -> types.CountTokensResponse:
        """Counted by `model` only (another model's count would be another answer);
        retried, and paced by countTokens' own quota (`tiers.count_tokens_quota`):
        generation's quota never delays it, and it costs nothing."""
        response = self._guard.client.models.count_tokens(
            model=model, contents=contents, config=config
        )
        _told(response)
        return response


class GuardedAio:
    """`guard.aio`: the asyncio side, like `client.aio`."""

    def __init__(self, guard: Guard) -> None:
        self.models = AsyncGuardedModels(guard)


class AsyncGuardedModels:
    """`guard.aio.models`: the same three calls for asyncio, on `guard.client.aio`."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def generate_content(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> types.GenerateContentResponse:
        stage = self._guard._cache_stage
        if stage is None:
            return await self._generate(model=model, contents=contents, config=config)
        plan = stage.plan(model, contents, config)
        return await stage.agenerate(plan, model=model, contents=contents, call=self._generate)

    async def _generate(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> types.GenerateContentResponse:
        g = self._guard
        g._preflight(model, contents, config)
        try:
            with checked_request(await g._atokens(model, contents, config)):
                response = await g.client.aio.models.generate_content(
                    model=model, contents=contents, config=config
                )
        except ResponseBlocked as blocked:
            raise _typed_blocked(blocked) from None
        _told(response)
        return response

    async def generate_content_stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        stage = self._guard._cache_stage
        if stage is None:
            return await self._stream(model=model, contents=contents, config=config)
        plan = stage.plan(model, contents, config, stream=True)
        return await stage.astream(plan, model=model, contents=contents, call=self._stream)

    async def _stream(
        self,
        *,
        model: str,
        contents: types.ContentListUnionDict,
        config: types.GenerateContentConfigOrDict | None = None,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        g = self._guard
        g._preflight(model, contents, config)
        with checked_request(await g._atokens(model, contents, config)):
            stream = await g.client.aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
            chunks = aiter(stream)
            # The request goes out for the first chunk: its failures (retried and
            # fallen back on the path) reach the caller of this call.
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = None
        return self._relay(first, chunks, model)

    async def _relay(
        self,
        first: types.GenerateContentResponse | None,
        chunks: AsyncIterator[types.GenerateContentResponse],
        model: str,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        if first is None:
            return
        info = _told(first)
        partial = [_chunk_text(first)]
        yield first
        try:
            async for chunk in chunks:
                remember(chunk, info)
                partial.append(_chunk_text(chunk))
                yield chunk
        except CallFailed:
            raise  # a stall, told by the path as StreamStalled
        except Exception as exc:
            raise self._guard._stream_failed(
                _served(info, model), info, exc, "".join(partial)
            ) from scrubbed(exc)

    async def count_tokens(
        self,
        *,
        model: str,
        contents: types.ContentListUnion | types.ContentListUnionDict,
        config: types.CountTokensConfigOrDict | None = None,
    ) -> types.CountTokensResponse:
        response = await self._guard.client.aio.models.count_tokens(
            model=model, contents=contents, config=config
        )
        _told(response)
        return response


def _told(response: object) -> CallInfo:
    """Tie the answer the SDK built to the call the path just told `last_call()` of
    (the path tells it before the SDK sees the answer's first byte)."""
    info = last_call()
    if info is None:  # not a call of the path (nothing to tie it to)
        return CallInfo(call_id="", model=None, attempts=(), elapsed=0.0)
    remember(response, info)
    return info


def _served(info: CallInfo, model: str) -> str:
    return info.model or _bare(model)


def _typed_blocked(blocked: ResponseBlocked) -> ResponseBlocked:
    """`ResponseBlocked` with the answer as the SDK's own response object, as the
    SDK-shaped API returns answers (the HTTP path has only its JSON)."""
    answer = blocked.response
    if isinstance(answer, dict):
        # A shape the SDK does not read stays its JSON, as the path had it.
        with contextlib.suppress(ValueError):
            blocked.response = types.GenerateContentResponse.model_validate(answer)
    return blocked


def wrap(client: genai.Client, **options: Any) -> Guard:
    """Guard an existing `google.genai.Client`: `wrap(client, models=[...])`."""
    return Guard(client=client, **options)


def guard_from_config(config: GuardConfig, **overrides: Any) -> Guard:
    """`Guard(**config.guard_options())` with keyword arguments over it (e.g. `client=`,
    `clock=`, `hooks=`). Three of them replace more than their own option: `client=`
    the configuration's API key and base_url; `quota=` its pacing (the pool of its
    projects, its quota limits and max_wait: the Guard runs as the first project);
    and `hooks=` come before the configuration's own (its JSONL file), not instead."""
    if "quota" in overrides and len(config.projects) > 1:
        config = config.model_copy(update={"projects": config.projects[:1]})
    own_client = "client" in overrides
    options = config.guard_options(require_key=not own_client and "api_key" not in overrides)
    if own_client:
        options.pop("api_key", None)
        options.pop("base_url", None)
    if "quota" in overrides:
        options.pop("quota_limits", None)
        options.pop("quota_max_wait", None)
    hooks = [*overrides.pop("hooks", ()), *options.pop("hooks", ())]
    return Guard(**{**options, **overrides, "hooks": hooks})


def _limits_of(limits: object) -> dict[str, Limits | dict[str, object]]:
    """`quota_limits=` validated, its errors naming that option."""
    from gemini_guard.quota.limits import parse_model_limits

    return dict(parse_model_limits(limits, field_name="quota_limits"))


def _first_key(projects: Sequence[Project | Mapping[str, object]]) -> str | None:
    """The first key of the first project, for the Guard's own client."""
    for project in projects[:1]:
        keys = project.get("keys") if isinstance(project, Mapping) else project.keys
        if isinstance(keys, list | tuple) and keys and isinstance(keys[0], str):
            return keys[0]
    return None  # the pool tells what is wrong with the projects
