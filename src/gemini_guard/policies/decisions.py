"""What a policy can decide after a failed attempt: retry, fall back, or fail.

Decisions are values; the drivers in `gemini_guard.call` carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "Fail", "FailKind", "FallBack", "Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Send again to the same model after `delay` seconds.

    `shrink`: send it with a smaller thinking budget and output cap (after a 504 or a
    timeout, once per model).
    """

    delay: float
    reason: str
    shrink: bool = False


@dataclass(frozen=True, slots=True)
class FallBack:
    """Move on to the next usable model of the chain now.

    `park_until` (wall epoch seconds): skip this model until then (per-day quota).
    `warning`: something the user must hear about (a chain model that is not found).
    """

    reason: str
    park_until: float | None = None
    warning: str | None = None


FailKind = Literal[
    "rejected",  # the request is wrong: RequestRejected
    "exhausted",  # retries, budget or deadline used up: AttemptsExhausted / FallbackExhausted
    "daily_quota",  # the day's quota is spent: DailyQuotaExhausted
    "quota_wait",  # the server asks for a wait longer than allowed: QuotaWait
]


@dataclass(frozen=True, slots=True)
class Fail:
    """Stop the call now with an error of kind `kind`.

    `reset_at`: when a per-day quota returns (kind "daily_quota");
    `wait`: the wait the server asked for (kind "quota_wait").
    """

    kind: FailKind
    reason: str
    reset_at: float | None = None
    wait: float | None = None


Decision = Retry | FallBack | Fail
