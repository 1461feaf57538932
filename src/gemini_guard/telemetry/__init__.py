"""Telemetry: events at every step of a guarded call, and the sinks that receive them."""

from gemini_guard.telemetry.events import (
    AttemptFailed,
    AttemptStarted,
    BreakerStateChanged,
    CallFailedEvent,
    CallSucceeded,
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
    "AttemptFailed",
    "AttemptStarted",
    "BreakerStateChanged",
    "CallFailedEvent",
    "CallSucceeded",
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
