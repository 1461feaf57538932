"""What happened during a guarded call, as immutable values.

Every event has `timestamp` (wall epoch seconds from the Guard's clock), `call_id`
(one per guarded call) and `model`. Failure events also carry what the
troubleshooting guide says to record of every error: the HTTP status, the gRPC status,
the category and the full (redacted) message. No event ever holds an API key.

    Event
    ├── PreflightProblems     local checks found problems in a request (before sending)
    ├── AttemptStarted        a request is about to be sent
    ├── QuotaWaited           the quota gate asked to wait before sending
    ├── QuotaNotice           the limiter learned a limit, or its shared store failed
    │   └── PhantomRateLimits bare 429s that are not the project's limit (phantom 429s)
    ├── ModelSkipped          a chain model was not tried (breaker open, parked)
    ├── BreakerStateChanged   a model's breaker moved (closed/open/half_open)
    ├── CallSucceeded         the call returned a response
    ├── CallUsage             ... what it used and cost (right after CallSucceeded)
    ├── Alert                 something an operator should look at (telemetry.alerts)
    └── FailureEvent          (carries http_status, grpc_status, category, message)
        ├── AttemptFailed     one request failed
        ├── RetryScheduled    ... and will be sent again after `delay`
        ├── FallbackTaken     ... and the call moves to the next model
        └── CallFailedEvent   the call failed; `error` names the GuardError raised
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

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
    "ModelSkipped",
    "PhantomRateLimits",
    "PreflightProblems",
    "QuotaNotice",
    "QuotaWaited",
    "RetryScheduled",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"

    timestamp: float
    call_id: str
    model: str

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, its kind first under "event"."""
        data: dict[str, Any] = {"event": self.kind}
        for f in dataclasses.fields(self):
            data[f.name] = getattr(self, f.name)
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class PreflightProblems(Event):
    """The request failed local checks. `rejected`: it was not sent (validation="strict")."""

    kind: ClassVar[str] = "preflight_problems"

    problems: tuple[str, ...]  # one readable line per problem: "path: what is wrong"
    rejected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStarted(Event):
    kind: ClassVar[str] = "attempt_started"

    attempt: int  # 1-based, across the whole call
    attempt_on_model: int  # 1-based, on this model
    probe: bool = False  # a half-open breaker probe
    shrunk: bool = False  # sent with a smaller thinking budget / output cap


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaWaited(Event):
    kind: ClassVar[str] = "quota_waited"

    project: str
    wait: float  # seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaNotice(Event):
    """News from the quota limiter, outside any one call (`call_id` is "").

    `notice`: "limit_learned" (the server enforces less than configured: the
    December 2025 cut, detected), "limit_recovered", "store_degraded" (the shared
    store is down: pacing is local to this process) or "store_recovered".
    `model` is "" for store notices.
    """

    kind: ClassVar[str] = "quota_notice"

    notice: str
    message: str
    project: str | None = None
    metric: str | None = None  # "rpm", "tpm", "rpd", "tpd"
    limit: int | None = None  # the limit now paced by


@dataclass(frozen=True, slots=True, kw_only=True)
class PhantomRateLimits(QuotaNotice):
    """Bare 429s (no quota named) that the limiter judged not to be the project's
    limit: they came at a small share of it, or at a rate the server had just
    admitted. Pacing stays at `limit` requests per minute; the 429s are retried.
    `notice` is "phantom_429"; `message` (English) and `message_zh` (Chinese) give
    the figures and what to do. At most one per model and project a minute.
    """

    kind: ClassVar[str] = "phantom_rate_limits"

    refused: int  # bare 429s judged not a limit in the last minute
    rate: int  # requests the server admitted meanwhile (this process's)
    share: float  # rate / limit
    tier: str | None  # "free", "tier1", ... (None: not configured)
    message_zh: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSkipped(Event):
    kind: ClassVar[str] = "model_skipped"

    reason: str  # "breaker_open", "parked", "quota"
    until: float | None = None  # wall seconds when it may be used again


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerStateChanged(Event):
    kind: ClassVar[str] = "breaker_state_changed"

    old: str
    new: str
    reason: str
    open_until: float | None = None
    project: str | None = None  # set when a project pool keeps a breaker per project


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSucceeded(Event):
    kind: ClassVar[str] = "call_succeeded"

    attempts: int
    elapsed: float  # clock seconds, waits included
    input_tokens: int | None = None
    requested: str | None = None  # the model the call asked for
    served_by_requested: bool = True  # False: a fallback model answered


@dataclass(frozen=True, slots=True, kw_only=True)
class CallUsage(Event):
    """The tokens a successful call was billed for, and their price in USD. Emitted
    for every successful call, whether or not a sink listens to its other events.

    `input_tokens` counts the whole prompt, `cached_tokens` the part of it billed at
    the cached price; `output_tokens` excludes thinking, which is billed as output
    too. `cost_usd` is None for a model without known prices.
    """

    kind: ClassVar[str] = "call_usage"

    attempts: int  # requests sent (the successful one included)
    elapsed: float  # clock seconds, waits included (for a stream: to its first chunk)
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    cached_tokens: int
    cost_usd: float | None
    project: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Event):
    """Something an on-call engineer should look at, in English and Chinese.

    `rule` names the rule that fired ("429_rate", "limit_cut", "5xx_spike",
    "breaker_open", "daily_quota"); `since` is when the condition began (wall
    seconds); `model` is "" for an alert about no one model.
    """

    kind: ClassVar[str] = "alert"

    rule: str
    severity: str  # "warning" or "critical"
    since: float
    what: str
    next_step: str
    what_zh: str
    next_step_zh: str
    project: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureEvent(Event):
    kind: ClassVar[str] = "failure"

    http_status: int | None
    grpc_status: str | None
    category: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFailed(FailureEvent):
    kind: ClassVar[str] = "attempt_failed"

    attempt: int
    elapsed: float  # clock seconds this attempt took


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(FailureEvent):
    kind: ClassVar[str] = "retry_scheduled"

    attempt: int  # the attempt that failed
    reason: str
    delay: float
    shrink: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackTaken(FailureEvent):
    kind: ClassVar[str] = "fallback_taken"

    reason: str
    to_model: str | None  # None when no later model is usable
    warning: str | None = None
    park_until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailedEvent(FailureEvent):
    kind: ClassVar[str] = "call_failed"

    error: str  # the GuardError subclass raised, e.g. "FallbackExhausted"
    reason: str
    attempts: int
    elapsed: float
