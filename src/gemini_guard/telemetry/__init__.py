"""Telemetry: events at every step of a guarded call, and the sinks that receive them.

Optional sinks, imported from their modules (they need extras):
`telemetry.prometheus.PrometheusMetrics` (`[prometheus]`), `telemetry.otel.OtelTracing`
(`[otel]`); alert rules in `telemetry.alerts`, spend in `telemetry.spend`, the HTML
report in `telemetry.report`.
"""

from gemini_guard.telemetry.events import (
    Alert,
    AttemptFailed,
    AttemptStarted,
    BreakerStateChanged,
    CallFailedEvent,
    CallSucceeded,
    CallUsage,
    Event,
    FailureEvent,
    FallbackTaken,
    ModelSkipped,
    PhantomRateLimits,
    PreflightProblems,
    QuotaNotice,
    QuotaWaited,
    RetryScheduled,
)
from gemini_guard.telemetry.quota import quota_notice
from gemini_guard.telemetry.sinks import JsonlSink, LoggingSink, Sink, Telemetry

__all__ = [
    "Alert",
    "AttemptFailed",
    "AttemptStarted",
    "BreakerStateChanged",
    "CallFailedEvent",
    "CallSucceeded",
    "CallUsage",
    "Event",
    "FailureEvent",
    "FallbackTaken",
    "JsonlSink",
    "LoggingSink",
    "ModelSkipped",
    "PhantomRateLimits",
    "PreflightProblems",
    "QuotaNotice",
    "QuotaWaited",
    "RetryScheduled",
    "Sink",
    "Telemetry",
    "quota_notice",
]
