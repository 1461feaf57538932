"""Pure decisions of the call path: retry, circuit breaker, fallback.

Each policy takes state, a `Diagnosis` and clock readings and returns a decision;
the drivers in `gemini_guard.call` do the waiting and the sending.
"""

from gemini_guard.policies.breaker import (
    Admission,
    AsyncBreakerStore,
    Breaker,
    BreakerPolicy,
    BreakerSnapshot,
    BreakerStore,
    BreakerTransition,
    MemoryBreakerStore,
)
from gemini_guard.policies.breaker_stores import (
    RedisBreakerStore,
    SQLiteBreakerStore,
    open_breaker_store,
)
from gemini_guard.policies.decisions import Decision, Fail, FallBack, Retry
from gemini_guard.policies.fallback import (
    REQUEST_ERRORS,
    ModelProgress,
    ParkingLot,
    decide_after_failure,
)
from gemini_guard.policies.retry import (
    UPSTREAM_FAILURES,
    RetryBudget,
    RetryPolicy,
    RetrySlots,
    bare_429,
    compute_backoff,
    retry_delay,
    retry_spacing,
    spends_budget,
)

__all__ = [
    "REQUEST_ERRORS",
    "UPSTREAM_FAILURES",
    "Admission",
    "AsyncBreakerStore",
    "Breaker",
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerStore",
    "BreakerTransition",
    "Decision",
    "Fail",
    "FallBack",
    "MemoryBreakerStore",
    "ModelProgress",
    "ParkingLot",
    "RedisBreakerStore",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "RetrySlots",
    "SQLiteBreakerStore",
    "bare_429",
    "compute_backoff",
    "decide_after_failure",
    "open_breaker_store",
    "retry_delay",
    "retry_spacing",
    "spends_budget",
]
