"""Prometheus metrics from a Guard's events (the `prometheus` extra).

    metrics = PrometheusMetrics()
    guard = Guard(..., metrics=metrics)        # or hooks=[metrics]; metrics.watch(guard)
    metrics.serve(9464)                        # or metrics.exposition() in your own server

Counters and histograms follow the events; the quota gauges and the response cache's
counters are read from the watched Guards when scraped. Names follow Prometheus
conventions (base units in the name, `_total` on counters):

    gemini_guard_requests_total{model,outcome,category}      guarded calls by how they ended
    gemini_guard_request_duration_seconds{model,outcome}     a call's latency, waits included
    gemini_guard_attempts_total{model}                       requests sent to Google
    gemini_guard_attempt_errors_total{model,category,code}   ... that failed (code: HTTP status)
    gemini_guard_retries_total{model,category}
    gemini_guard_fallbacks_total{from_model,to_model,reason}
    gemini_guard_model_skips_total{model,reason}
    gemini_guard_breaker_state{model,project,state}          1 for the state it is in
    gemini_guard_quota_wait_seconds{model,project}
    gemini_guard_quota_notices_total{notice}
    gemini_guard_quota_requests{project,model,window}        window: minute, day
    gemini_guard_quota_requests_limit{project,model,window}
    gemini_guard_quota_input_tokens{project,model,window}
    gemini_guard_quota_input_tokens_limit{project,model,window}
    gemini_guard_tokens_total{model,kind}                    kind: input, output, thinking, cached
    gemini_guard_spend_usd_total{model}
    gemini_guard_cache_requests_total{result}                result: hit, miss, coalesced
    gemini_guard_alerts_total{rule,severity}

No label ever holds a key, a prompt or a message: models and projects are names, and
categories, reasons and codes come from fixed sets. Models and projects not named up
front are admitted up to `max_label_values` each, then counted as "other".

Several processes (a gateway's workers): set PROMETHEUS_MULTIPROC_DIR to an empty
directory before any of them starts; each process then writes its samples there and
`exposition()` in any one of them merges them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gemini_guard.telemetry._local_metrics import LocalCollector, LocalFamily
from gemini_guard.telemetry.events import (
    Alert,
    AttemptFailed,
    BreakerStateChanged,
    CallFailedEvent,
    CallUsage,
    Event,
    FallbackTaken,
    ModelSkipped,
    QuotaNotice,
    QuotaWaited,
    RetryScheduled,
)
from gemini_guard.telemetry.quota_state import limiter_of, read_quota

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["CONTENT_TYPE", "OTHER", "PrometheusMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
_STATES = ("closed", "half_open", "open")
# Seconds. Calls: from a cached answer (ms) to a long thinking call behind retries.
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)


def _import_client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImportError(
            "Prometheus metrics need prometheus-client: pip install 'gemini-guard[prometheus]'"
        ) from None
    return prometheus_client


class _Bounded:
    """Label values from a known set, plus at most `cap` others; then "other"."""

    __slots__ = ("_cap", "_lock", "_seen")

    def __init__(self, known: Iterable[str], cap: int) -> None:
        self._seen: set[str] = set(known)
        self._cap = len(self._seen) + cap
        self._lock = threading.Lock()

    def add_known(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                self._seen.add(value)
                self._cap += 1

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return "none"
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._cap:
                self._seen.add(value)
                return value
        return OTHER

    def values(self) -> list[str]:
        with self._lock:
            return sorted(self._seen)


class _Family:
    """A prometheus_client metric (multiprocess mode) with its children kept by label
    values: `labels()` validates and locks on every call, which costs more than the
    increment itself."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


@dataclass(frozen=True, slots=True)
class _SuccessCells:
    attempts: Any
    requests: Any
    duration: Any
    input: Any
    output: Any
    thinking: Any
    cached: Any
    spend: Any


class PrometheusMetrics:
    """A telemetry sink that keeps Prometheus metrics; see the module docstring.

    - `registry`: where the metrics are registered (a new `CollectorRegistry` by
      default, so two instances never clash; pass `prometheus_client.REGISTRY` to
      serve them with your other metrics).
    - `models`, `projects`: label values always admitted (a Guard's chain and
      projects are added by `watch`); `max_label_values` more of each, then "other".
    """

    # The sink reads no free text, so `Telemetry` may skip scrubbing for it; and it
    # counts successes from `CallUsage`, so a call builds no other events for it.
    reads_text = False
    per_attempt = False

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        models: Iterable[str] = (),
        projects: Iterable[str] = (),
        max_label_values: int = 20,
    ) -> None:
        pc = _import_client()
        self._pc = pc
        self.registry: CollectorRegistry = (
            registry if registry is not None else pc.CollectorRegistry(auto_describe=True)
        )
        self.multiprocess_dir: str | None = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.model = _Bounded(models, max_label_values)
        self.project = _Bounded(projects, max_label_values)
        self._guards: list[Any] = []
        r = self.registry
        local: list[LocalFamily] = []

        def family(
            kind: str,
            name: str,
            doc: str,
            labels: list[str],
            *,
            buckets: tuple[float, ...] = (),
            multiprocess_mode: str = "",
        ) -> Any:
            if self.multiprocess_dir is None:
                made = LocalFamily(kind, f"gemini_guard_{name}", doc, labels, buckets=buckets)
                local.append(made)
                return made
            more: dict[str, Any] = {}
            if buckets:
                more["buckets"] = buckets
            if multiprocess_mode:
                more["multiprocess_mode"] = multiprocess_mode
            cls = {"counter": pc.Counter, "histogram": pc.Histogram, "gauge": pc.Gauge}[kind]
            return _Family(cls(name, doc, labels, namespace="gemini_guard", registry=r, **more))

        counter, histogram, gauge = "counter", "histogram", "gauge"
        self.requests = family(
            counter, "requests", "Guarded calls, by how they ended.",
            ["model", "outcome", "category"],
        )  # fmt: skip
        self.duration = family(
            histogram, "request_duration_seconds",
            "Latency of guarded calls, waits and retries included.",
            ["model", "outcome"], buckets=_CALL_BUCKETS,
        )  # fmt: skip
        self.attempts = family(counter, "attempts", "Requests sent to the Gemini API.", ["model"])
        self.attempt_errors = family(
            counter, "attempt_errors",
            "Requests that failed, by diagnosis category and HTTP status.",
            ["model", "category", "code"],
        )  # fmt: skip
        self.retries = family(
            counter, "retries", "Attempts scheduled again after a failure.", ["model", "category"]
        )
        self.fallbacks = family(
            counter, "fallbacks", "Calls moved from one model to the next.",
            ["from_model", "to_model", "reason"],
        )  # fmt: skip
        self.skips = family(
            counter, "model_skips", "Chain models not tried (breaker open, parked for the day).",
            ["model", "reason"],
        )  # fmt: skip
        self.breaker = family(
            gauge, "breaker_state", "1 for the state each model's breaker is in.",
            ["model", "project", "state"], multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.quota_wait = family(
            histogram, "quota_wait_seconds", "Waits the quota gate asked for before sending.",
            ["model", "project"], buckets=_WAIT_BUCKETS,
        )  # fmt: skip
        self.notices = family(
            counter, "quota_notices",
            "News from the quota limiter (limit learned, store down...).", ["notice"],
        )  # fmt: skip
        self.tokens = family(
            counter, "tokens",
            "Tokens billed, by kind (cached is part of input; thinking is billed as output).",
            ["model", "kind"],
        )  # fmt: skip
        self.spend = family(
            counter, "spend_usd", "Spend in US dollars at the model table's prices.", ["model"]
        )
        self.alerts = family(counter, "alerts", "Alerts raised.", ["rule", "severity"])
        # model -> the children a successful call updates (found once per model).
        self._success: dict[str, _SuccessCells] = {}
        self._handlers: dict[type[Event], Callable[[Any, str], None]] = {
            CallUsage: self._call_usage,
            AttemptFailed: self._attempt_failed,
            RetryScheduled: self._retry_scheduled,
            FallbackTaken: self._fallback_taken,
            CallFailedEvent: self._call_failed,
            QuotaWaited: self._quota_waited,
            ModelSkipped: self._model_skipped,
            BreakerStateChanged: self._breaker_changed,
            QuotaNotice: self._quota_notice,
            Alert: self._alert,
        }
        if local:
            self.registry.register(LocalCollector(local))
        self._state_collector = _StateCollector(self)
        self.registry.register(self._state_collector)

    # -- sources read at scrape time -------------------------------------------------

    def watch(self, guard: Any) -> None:
        """Read `guard`'s quota ledgers and response cache when scraped, and admit
        its chain's models and its projects as label values."""
        self.model.add_known(getattr(guard, "chain", ()))
        pool = getattr(getattr(guard, "engine", None), "quota", None)
        projects = getattr(pool, "projects", None)
        if projects is not None:
            self.project.add_known(p.name for p in projects)
        else:
            self.project.add_known([getattr(guard.engine, "project", "default")])
        self._guards.append(guard)

    def unwatch(self, guard: Any) -> None:
        if guard in self._guards:
            self._guards.remove(guard)

    # -- the sink ------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event, self.model(event.model))

    # Every request sent ends in a success (its call's CallUsage) or an AttemptFailed:
    # attempts are counted there, so no event has to be built when each starts.
    def _call_usage(self, event: CallUsage, model: str) -> None:
        cells = self._success.get(model)
        if cells is None:
            cells = self._success[model] = _SuccessCells(
                attempts=self.attempts(model),
                requests=self.requests(model, "success", "none"),
                duration=self.duration(model, "success"),
                input=self.tokens(model, "input"),
                output=self.tokens(model, "output"),
                thinking=self.tokens(model, "thinking"),
                cached=self.tokens(model, "cached"),
                spend=self.spend(model),
            )
        cells.attempts.inc()
        cells.requests.inc()
        cells.duration.observe(event.elapsed)
        cells.input.inc(event.input_tokens)
        cells.output.inc(event.output_tokens)
        if event.thinking_tokens:
            cells.thinking.inc(event.thinking_tokens)
        if event.cached_tokens:
            cells.cached.inc(event.cached_tokens)
        if event.cost_usd:
            cells.spend.inc(event.cost_usd)

    def _attempt_failed(self, event: AttemptFailed, model: str) -> None:
        code = str(event.http_status) if event.http_status is not None else "none"
        self.attempts(model).inc()
        self.attempt_errors(model, event.category, code).inc()

    def _retry_scheduled(self, event: RetryScheduled, model: str) -> None:
        self.retries(model, event.category).inc()

    def _fallback_taken(self, event: FallbackTaken, model: str) -> None:
        self.fallbacks(model, self.model(event.to_model), event.reason).inc()

    def _call_failed(self, event: CallFailedEvent, model: str) -> None:
        if event.error == "StreamInterrupted":  # its request counted as no failure yet
            self.attempts(model).inc()
        self.requests(model, "failure", event.category).inc()
        self.duration(model, "failure").observe(event.elapsed)

    def _quota_waited(self, event: QuotaWaited, model: str) -> None:
        self.quota_wait(model, self.project(event.project)).observe(event.wait)

    def _model_skipped(self, event: ModelSkipped, model: str) -> None:
        self.skips(model, event.reason).inc()

    def _breaker_changed(self, event: BreakerStateChanged, model: str) -> None:
        project = self.project(event.project or self._default_project())
        for state in _STATES:
            self.breaker(model, project, state).set(1 if state == event.new else 0)

    def _quota_notice(self, event: QuotaNotice, model: str) -> None:
        self.notices(event.notice).inc()

    def _alert(self, event: Alert, model: str) -> None:
        self.alerts(event.rule, event.severity).inc()

    def _default_project(self) -> str:
        for guard in self._guards:
            project = getattr(getattr(guard, "engine", None), "project", None)
            if isinstance(project, str):
                return project
        return "default"

    # -- exposition ------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (merged across processes in
        multiprocess mode)."""
        pc = self._pc
        return bytes(pc.generate_latest(self._scrape_registry()))

    def _scrape_registry(self) -> CollectorRegistry:
        if self.multiprocess_dir is None:
            return self.registry
        from prometheus_client import multiprocess

        registry: CollectorRegistry = self._pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        # Quota and cache state live in the shared stores: read once, not per process.
        registry.register(self._state_collector)
        return registry

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve `/metrics` on `addr:port` from a daemon thread; returns the HTTP
        server (`shutdown()` and `server_close()` stop it). Port 0 picks a free one
        (`server.server_port`)."""
        server, _thread = self._pc.start_http_server(
            port, addr=addr, registry=self._scrape_registry()
        )
        return server


class _StateCollector:
    """Quota gauges and cache counters, read from the watched Guards when scraped."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # read lazily: describing must not touch the stores

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self._metrics
        labels = ["project", "model", "window"]
        families = {
            "requests": GaugeMetricFamily(
                "gemini_guard_quota_requests",
                "Requests in the quota window (in flight included).",
                labels=labels,
            ),
            "requests_limit": GaugeMetricFamily(
                "gemini_guard_quota_requests_limit",
                "The request limit paced by (learned limits included).",
                labels=labels,
            ),
            "tokens": GaugeMetricFamily(
                "gemini_guard_quota_input_tokens",
                "Input tokens in the quota window.",
                labels=labels,
            ),
            "tokens_limit": GaugeMetricFamily(
                "gemini_guard_quota_input_tokens_limit",
                "The input token limit paced by.",
                labels=labels,
            ),
        }
        cache = CounterMetricFamily(
            "gemini_guard_cache_requests",
            "Cacheable calls: answered from the cache, sent upstream, or shared.",
            labels=["result"],
        )
        cache_seen = False
        counts = {"hit": 0, "miss": 0, "coalesced": 0}
        for guard in list(m._guards):
            limiter = limiter_of(getattr(guard, "quota", None))
            if limiter is not None:
                for project, model in _pairs(guard, m):
                    reading = read_quota(limiter, project, model)
                    for window, used, limit, tokens, token_limit in (
                        (
                            "minute",
                            reading.minute_requests,
                            reading.minute_request_limit,
                            reading.minute_input_tokens,
                            reading.minute_input_token_limit,
                        ),
                        (
                            "day",
                            reading.day_requests,
                            reading.day_request_limit,
                            reading.day_input_tokens,
                            reading.day_input_token_limit,
                        ),
                    ):
                        values = [m.project(project), m.model(model), window]
                        families["requests"].add_metric(values, used)
                        families["tokens"].add_metric(values, tokens)
                        if limit is not None:
                            families["requests_limit"].add_metric(values, limit)
                        if token_limit is not None:
                            families["tokens_limit"].add_metric(values, token_limit)
            cache_of = getattr(guard, "cache", None)
            if cache_of is not None:
                stats = cache_of.stats()
                cache_seen = True
                counts["hit"] += stats.hits
                counts["miss"] += stats.misses
                counts["coalesced"] += stats.coalesced
        yield from families.values()
        if cache_seen:
            for result, value in counts.items():
                cache.add_metric([result], value)
            yield cache


def _pairs(guard: Any, metrics: PrometheusMetrics) -> list[tuple[str, str]]:
    """The (project, model) ledgers worth reading: the chain's models under the
    Guard's project (or each of a pool's projects)."""
    gate = getattr(guard, "quota", None)
    members = getattr(gate, "projects", None)
    if members is not None:
        projects = [p.name for p in members]
    else:
        projects = [getattr(guard.engine, "project", "default")]
    models = list(getattr(guard, "chain", ()))
    for model in metrics.model.values():
        if model not in models and model not in ("none", OTHER) and "*" not in model:
            models.append(model)
    return [(p, mo) for p in projects for mo in models]
