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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from gemini_guard.telemetry.events import (
    Alert,
    AttemptFailed,
    AttemptStarted,
    BreakerStateChanged,
    CallFailedEvent,
    CallSucceeded,
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


class PrometheusMetrics:
    """A telemetry sink that keeps Prometheus metrics; see the module docstring.

    - `registry`: where the metrics are registered (a new `CollectorRegistry` by
      default, so two instances never clash; pass `prometheus_client.REGISTRY` to
      serve them with your other metrics).
    - `models`, `projects`: label values always admitted (a Guard's chain and
      projects are added by `watch`); `max_label_values` more of each, then "other".
    """

    # The sink reads no free text, so `Telemetry` may skip scrubbing for it.
    reads_text = False

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
        c, h, g = pc.Counter, pc.Histogram, pc.Gauge
        ns = "gemini_guard"
        self.requests = c(
            "requests", "Guarded calls, by how they ended.",
            ["model", "outcome", "category"], namespace=ns, registry=r,
        )  # fmt: skip
        self.duration = h(
            "request_duration_seconds", "Latency of guarded calls, waits and retries included.",
            ["model", "outcome"], namespace=ns, registry=r, buckets=_CALL_BUCKETS,
        )  # fmt: skip
        self.attempts = c(
            "attempts", "Requests sent to the Gemini API.", ["model"], namespace=ns, registry=r
        )
        self.attempt_errors = c(
            "attempt_errors", "Requests that failed, by diagnosis category and HTTP status.",
            ["model", "category", "code"], namespace=ns, registry=r,
        )  # fmt: skip
        self.retries = c(
            "retries", "Attempts scheduled again after a failure.",
            ["model", "category"], namespace=ns, registry=r,
        )  # fmt: skip
        self.fallbacks = c(
            "fallbacks", "Calls moved from one model to the next.",
            ["from_model", "to_model", "reason"], namespace=ns, registry=r,
        )  # fmt: skip
        self.skips = c(
            "model_skips", "Chain models not tried (breaker open, parked for the day).",
            ["model", "reason"], namespace=ns, registry=r,
        )  # fmt: skip
        self.breaker = g(
            "breaker_state", "1 for the state each model's breaker is in.",
            ["model", "project", "state"], namespace=ns, registry=r,
            multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.quota_wait = h(
            "quota_wait_seconds", "Waits the quota gate asked for before sending.",
            ["model", "project"], namespace=ns, registry=r, buckets=_WAIT_BUCKETS,
        )  # fmt: skip
        self.notices = c(
            "quota_notices", "News from the quota limiter (limit learned, store down...).",
            ["notice"], namespace=ns, registry=r,
        )  # fmt: skip
        self.tokens = c(
            "tokens", "Tokens billed, by kind (cached is part of input; thinking is billed "
            "as output).", ["model", "kind"], namespace=ns, registry=r,
        )  # fmt: skip
        self.spend = c(
            "spend_usd", "Spend in US dollars at the model table's prices.",
            ["model"], namespace=ns, registry=r,
        )  # fmt: skip
        self.alerts = c("alerts", "Alerts raised.", ["rule", "severity"], namespace=ns, registry=r)
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
        model = self.model(event.model)
        if isinstance(event, AttemptStarted):
            self.attempts.labels(model).inc()
        elif isinstance(event, CallSucceeded):
            self.requests.labels(model, "success", "none").inc()
            self.duration.labels(model, "success").observe(event.elapsed)
        elif isinstance(event, CallUsage):
            tokens = self.tokens
            tokens.labels(model, "input").inc(event.input_tokens)
            tokens.labels(model, "output").inc(event.output_tokens)
            tokens.labels(model, "thinking").inc(event.thinking_tokens)
            tokens.labels(model, "cached").inc(event.cached_tokens)
            if event.cost_usd is not None:
                self.spend.labels(model).inc(event.cost_usd)
        elif isinstance(event, AttemptFailed):
            code = str(event.http_status) if event.http_status is not None else "none"
            self.attempt_errors.labels(model, event.category, code).inc()
        elif isinstance(event, RetryScheduled):
            self.retries.labels(model, event.category).inc()
        elif isinstance(event, FallbackTaken):
            self.fallbacks.labels(model, self.model(event.to_model), event.reason).inc()
        elif isinstance(event, CallFailedEvent):
            self.requests.labels(model, "failure", event.category).inc()
            self.duration.labels(model, "failure").observe(event.elapsed)
        elif isinstance(event, QuotaWaited):
            self.quota_wait.labels(model, self.project(event.project)).observe(event.wait)
        elif isinstance(event, ModelSkipped):
            self.skips.labels(model, event.reason).inc()
        elif isinstance(event, BreakerStateChanged):
            project = self.project(event.project or self._default_project())
            for state in _STATES:
                self.breaker.labels(model, project, state).set(1 if state == event.new else 0)
        elif isinstance(event, QuotaNotice):
            self.notices.labels(event.notice).inc()
        elif isinstance(event, Alert):
            self.alerts.labels(event.rule, event.severity).inc()

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
