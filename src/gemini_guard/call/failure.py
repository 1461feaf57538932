"""The error a failed call raises, worked out from what the call went through.

`CallRecord` is the book-keeping of one call (every attempt, skipped models
included, and why the call stopped); `failure` turns it into the one `CallFailed`
subclass a caller can act on: rejected request, day spent, quota wait too long,
every breaker open, or attempts / fallbacks exhausted.
"""

from __future__ import annotations

from gemini_guard.clock import Clock
from gemini_guard.diagnosis import Category, Diagnosis
from gemini_guard.errors import (
    Attempt,
    AttemptsExhausted,
    CallFailed,
    CircuitOpen,
    DailyQuotaExhausted,
    FallbackExhausted,
    QuotaWait,
    RequestRejected,
)
from gemini_guard.policies import Fail
from gemini_guard.telemetry import CallFailedEvent, Telemetry

__all__ = ["CallRecord", "failure", "synthetic"]


class CallRecord:
    """What one call went through so far (mutable, private to the call)."""

    __slots__ = (
        "attempts",
        "breaker_until",
        "call_id",
        "final",
        "last",
        "last_error",
        "last_model",
        "parked",
        "sent",
        "sent_models",
        "started",
    )

    def __init__(self, call_id: str, started: float) -> None:
        self.call_id = call_id
        self.started = started
        self.attempts: list[Attempt] = []
        self.sent = 0  # attempts really sent (skipped models are attempts too)
        self.sent_models: list[str] = []
        self.breaker_until: list[float] = []  # when each skipped model's breaker reopens
        self.parked: list[float] = []  # when each parked model's day returns
        self.final: Fail | None = None  # set: the call stops with this
        self.last: Diagnosis | None = None
        self.last_error: BaseException | None = None
        self.last_model: str | None = None


def synthetic(category: Category, message: str, retry_after: float | None = None) -> Diagnosis:
    """A diagnosis for a call that failed without any request (breaker open, parked)."""
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason=None,
        message=message,
        category=category,
        retryable=category is not Category.DAILY_QUOTA_EXHAUSTED,
        retry_after=retry_after,
    )


def failure(
    record: CallRecord, chain: tuple[str, ...], *, clock: Clock, telemetry: Telemetry
) -> CallFailed:
    """The error `record`'s call fails with (told to `telemetry` as `CallFailedEvent`)."""
    final = record.final
    attempts = tuple(record.attempts)
    diagnosis = record.last
    error: CallFailed
    if final is not None and final.kind == "rejected":
        assert diagnosis is not None
        error = RequestRejected(
            f"request rejected ({final.reason})", diagnosis=diagnosis, attempts=attempts
        )
    elif final is not None and final.kind == "daily_quota":
        assert diagnosis is not None
        assert final.reset_at is not None
        error = DailyQuotaExhausted(
            f"daily quota exhausted on {record.last_model}; it resets at the Pacific midnight",
            diagnosis=diagnosis,
            attempts=attempts,
            reset_at=final.reset_at,
        )
    elif final is not None and final.kind == "quota_wait":
        wait = final.wait or 0.0
        diagnosis = diagnosis or synthetic(
            Category.RATE_LIMITED, "the quota wait is too long", retry_after=wait
        )
        error = QuotaWait(
            f"quota wait of {wait:.1f}s is more than allowed ({final.reason})",
            diagnosis=diagnosis,
            attempts=attempts,
            wait=wait,
        )
    elif not record.sent_models and record.breaker_until:
        retry_at = min(record.breaker_until)
        wait = max(0.0, retry_at - clock.time())
        diagnosis = synthetic(
            Category.OVERLOADED,
            f"circuit breaker open for {', '.join(chain)}; next probe in {wait:.0f}s",
            retry_after=wait,
        )
        error = CircuitOpen(
            f"circuit open for every usable model; next probe in {wait:.0f}s",
            diagnosis=diagnosis,
            attempts=attempts,
        )
    elif not record.sent_models and record.parked:
        reset_at = min(record.parked)
        diagnosis = diagnosis or synthetic(
            Category.DAILY_QUOTA_EXHAUSTED,
            "every model of the chain has spent its daily quota",
            retry_after=max(0.0, reset_at - clock.time()),
        )
        error = DailyQuotaExhausted(
            "every model of the chain has spent its daily quota",
            diagnosis=diagnosis,
            attempts=attempts,
            reset_at=reset_at,
        )
    else:
        if diagnosis is None:
            diagnosis = synthetic(Category.UNKNOWN, "no model of the chain could be tried")
        reason = final.reason if final is not None else "no usable model left in the chain"
        cls: type[CallFailed] = (
            FallbackExhausted if len(record.sent_models) > 1 else AttemptsExhausted
        )
        error = cls(
            f"{reason}; last failure on {record.last_model}: {diagnosis.category}"
            f" ({diagnosis.http_status or '-'} {diagnosis.grpc_status or ''})".rstrip(),
            diagnosis=diagnosis,
            attempts=attempts,
        )
    sent = sum(1 for a in attempts if a.sent)
    telemetry.emit(
        CallFailedEvent(
            timestamp=clock.time(),
            call_id=record.call_id,
            model=record.last_model or chain[0],
            http_status=error.diagnosis.http_status,
            grpc_status=error.diagnosis.grpc_status,
            category=str(error.diagnosis.category),
            message=error.diagnosis.message,
            error=type(error).__name__,
            reason=str(error),
            attempts=sent,
            elapsed=clock.monotonic() - record.started,
        )
    )
    return error
