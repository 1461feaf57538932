"""Which scripted fault (if any) hits a request, and how long it takes: pure choices
from the scenario, the emulated time and a seeded `random.Random`.

Faults are tried in the order the scenario lists them; each matching fault fires
with its own probability, and the first that fires wins. So with one fault of
probability p, a fraction p of matching requests fails.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.error_bodies import ErrorReply
from gemini_guard.emulator.scenario import Fault, LatencyRule

__all__ = [
    "QUIET_KINDS",
    "REFUSING_FAULTS",
    "STALL_KINDS",
    "pick_fault",
    "refusal",
    "sample_latency",
]

# Quiet failures: the request succeeds (200, quota spent) but the answer is unusable.
QUIET_KINDS = frozenset(
    {
        "blocked_prompt",
        "safety_block",
        "empty_candidate",
        "thinking_exhausted",
        "malformed_function_call",
    }
)
# Stalls: a stream stays silent for the fault's `delay` on the emulator's clock.
STALL_KINDS = frozenset({"stall_before_first_chunk", "stall_mid_stream"})


def pick_fault(
    faults: Sequence[Fault], *, model: str, elapsed: float, streaming: bool, rng: random.Random
) -> Fault | None:
    for fault in faults:
        if not fault.applies(model, elapsed, streaming=streaming):
            continue
        # Always draw, even at probability 1, so adding a sure fault does not shift
        # the random sequence seen by the faults after it.
        if rng.random() < fault.probability:
            return fault
    return None


def sample_latency(rules: Sequence[LatencyRule], *, model: str, rng: random.Random) -> float:
    """Seconds before the response starts (0 when no rule matches)."""
    for rule in rules:
        if rule.models and model not in rule.models:
            continue
        if rule.distribution == "fixed":
            return rule.seconds
        if rule.distribution == "uniform":
            return rng.uniform(rule.low, rule.high)
        if rule.distribution == "exponential":
            return rng.expovariate(1.0 / rule.seconds) if rule.seconds > 0 else 0.0
        # lognormal with the given median
        if rule.seconds <= 0:
            return 0.0
        return rng.lognormvariate(math.log(rule.seconds), rule.sigma)
    return 0.0


# -- faults that refuse a request with a 429 before it is admitted --------------------
# Neither kind looks at the caller's usage, and neither consumes quota: the request is
# refused before the quota ledger counts it.

REFUSING_FAULTS = frozenset({"phantom_429", "capacity_429"})
# The share of shared-capacity 429s that carry the older `errors[]` list with
# `reason: rateLimitExceeded` (some do, some do not).
_WITH_REASON = 0.5


def refusal(fault: Fault, *, rng: random.Random) -> ErrorReply:
    """The 429 a refusing fault answers with."""
    if fault.kind == "capacity_429":
        return error_bodies.capacity_429(with_reason=rng.random() < _WITH_REASON)
    return error_bodies.phantom_429()
