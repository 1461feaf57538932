"""After a failed attempt: retry this model, fall back along the chain, or fail.

`decide_after_failure` is the one place that reads a `Diagnosis` and says what
happens next. It is pure: the model's progress in this call, the policy, the clock
readings and a seeded `random.Random` in; a `Retry`, `FallBack` or `Fail` out.

The caller asked for a model: the Guard keeps it as long as retrying it is the
better bet. One failed request says little about a model (a flaky one fails a third
of the time and still answers), so transient failures are retried on it first and
the call moves on only when the model is failing, not when one request did. In order
of precedence:
- request errors (bad request, key, permission, size, precondition, billing): no
  fallback, no retry: fail at once with the diagnosis;
- `not_found` of a chain member: fall back, with a loud warning (deprecated name?);
- `daily_quota_exhausted` / `no_quota`: park the model until the Pacific midnight
  and fall back (retrying cannot help before then);
- the model's breaker is open (it opened on this very failure, or another call
  opened it): fall back now rather than wait out a backoff to find it refused;
- a server delay longer than the policy allows: fall back rather than sleep;
- `deadline_exceeded` / `timeout`: one smaller retry (optional), then fall back;
- 503, 500, 502, network errors and a bare 429 (no QuotaFailure, no RetryInfo: the
  server is short of capacity, not saying you are over a quota): retry the model
  with backoff and jitter (or the server's delay), and fall back after
  `fallback_after` failed attempts on it;
- the retry budget spent (an outage across calls, not bad luck): fall back.
On the last usable model the same failures retry up to `max_retries`, then fail.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from gemini_guard.diagnosis import Category, Diagnosis
from gemini_guard.pacific import next_reset
from gemini_guard.policies.decisions import Decision, Fail, FallBack, Retry
from gemini_guard.policies.retry import RetryPolicy, bare_429, retry_delay, spends_budget

__all__ = [
    "REQUEST_ERRORS",
    "ModelProgress",
    "ParkingLot",
    "decide_after_failure",
]

# The request itself is wrong: sending it again, anywhere, fails the same way.
REQUEST_ERRORS: frozenset[Category] = frozenset(
    {
        Category.BAD_REQUEST,
        Category.REQUEST_TOO_LARGE,
        Category.INVALID_API_KEY,
        Category.PERMISSION_DENIED,
        Category.PRECONDITION,
        Category.PAYMENT_REQUIRED,
    }
)

_SLOW = frozenset({Category.DEADLINE_EXCEEDED, Category.TIMEOUT})


@dataclass(frozen=True, slots=True)
class ModelProgress:
    """How the current model has fared so far in this call.

    `failures`: consecutive failed attempts on it (the one just failed included);
    `shrunk`: the one smaller retry after a deadline was already used.
    """

    failures: int
    shrunk: bool = False


def decide_after_failure(
    diagnosis: Diagnosis,
    *,
    progress: ModelProgress,
    policy: RetryPolicy,
    has_next: bool,
    budget_allows: bool,
    now: float,
    now_wall: float,
    deadline_at: float | None,
    rng: random.Random,
    model_open: bool = False,
) -> Decision:
    """What to do after an attempt on one model failed with `diagnosis`.

    `has_next`: a later model of the chain is usable (not parked, breaker not open).
    `now`, `deadline_at`: monotonic seconds; `now_wall`: wall epoch seconds (for the
    Pacific reset). `budget_allows`: the Guard's `RetryBudget` still allows a retry on
    this model. `model_open`: this model's own breaker refuses requests now.
    """
    category = diagnosis.category
    if category in REQUEST_ERRORS:
        return Fail("rejected", f"{category}: the request must be fixed; retrying cannot help")

    if category is Category.NOT_FOUND:
        warning = (
            "a model of the fallback chain was not found: its name may be wrong or "
            "deprecated; remove or rename it in the chain"
        )
        if has_next:
            return FallBack("not_found", warning=warning)
        return Fail("rejected", f"not_found: {warning}")

    if category in (Category.DAILY_QUOTA_EXHAUSTED, Category.NO_QUOTA):
        # A per-day quota (or a limit of 0) does not come back before the Pacific
        # midnight, whatever short retryDelay the error body carries.
        reset_at = next_reset(now_wall)
        if has_next:
            return FallBack(str(category), park_until=reset_at)
        if category is Category.NO_QUOTA:
            return Fail("rejected", "no_quota: this tier has no quota for the model")
        return Fail("daily_quota", "daily_quota_exhausted", reset_at=reset_at)

    if category is Category.THINKING_EXHAUSTED:
        # The output budget went to thinking: once more with less thinking, then the
        # caller gets what came (it is an answer, only a truncated one).
        if policy.shrink_on_deadline and not progress.shrunk:
            return Retry(0.0, str(category), shrink=True)
        return Fail("exhausted", "the thinking used the whole output budget, also with less")

    if not diagnosis.retryable:
        return Fail("rejected", f"{category} is not retryable")

    if model_open:
        reason = f"the model's circuit breaker is open ({category})"
        return FallBack(reason) if has_next else Fail("exhausted", reason)

    server_delay = diagnosis.retry_after
    if server_delay is not None and server_delay > policy.max_retry_after:
        reason = f"server asks to wait {server_delay:g}s, over max_retry_after"
        if has_next:
            return FallBack(reason)
        if category is Category.RATE_LIMITED:
            return Fail("quota_wait", reason, wait=server_delay)
        return Fail("exhausted", reason, wait=server_delay)

    shrink = False
    if category in _SLOW:
        if policy.shrink_on_deadline and not progress.shrunk:
            shrink = True
        elif has_next:
            return FallBack(str(category))

    attempts_allowed = policy.max_retries + 1
    if has_next:
        attempts_allowed = min(attempts_allowed, policy.fallback_after)
    if progress.failures >= attempts_allowed and not shrink:
        reason = f"{progress.failures} failed attempts on the model ({category})"
        return FallBack(reason) if has_next else Fail("exhausted", reason)

    if not budget_allows and spends_budget(diagnosis):
        # The budget guards against retry storms on a failing upstream; a quota wait
        # the server asked for is not one, so it is not held back.
        reason = "retry budget exhausted (the model is failing for many calls)"
        return FallBack(reason) if has_next else Fail("exhausted", reason)

    delay = retry_delay(diagnosis, max(0, progress.failures - 1), policy, rng)
    if deadline_at is not None and now + delay >= deadline_at:
        reason = f"the call's deadline leaves no time for a {delay:.1f}s wait"
        return FallBack(reason) if has_next else Fail("exhausted", reason)
    if bare_429(diagnosis):
        return Retry(delay, "rate_limited without quota details (transient capacity)")
    return Retry(delay, str(category), shrink=shrink)


class ParkingLot:
    """Models set aside until a wall time (a spent per-day quota), shared by a Guard."""

    __slots__ = ("_lock", "_until")

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def park(self, key: str, until: float) -> None:
        with self._lock:
            self._until[key] = max(until, self._until.get(key, until))

    def parked_until(self, key: str, now_wall: float) -> float | None:
        """When `key` comes back, or None when it is usable at `now_wall`."""
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return None
            if now_wall >= until:
                del self._until[key]
                return None
            return until
