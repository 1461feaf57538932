"""What a quota gate holds for one (project, model) now, against the limits it paces by.

Read by the metrics (gauges at scrape time) and the daily-quota alert. Only a
`QuotaLimiter` (or the limiter inside a `ProjectPool`) can answer; any other gate
reads as None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["QuotaReading", "limiter_of", "read_quota"]


@dataclass(frozen=True, slots=True)
class QuotaReading:
    """Used and limit per window; a limit of None means the window has no limit."""

    project: str
    model: str
    minute_requests: int
    minute_request_limit: int | None
    minute_input_tokens: int
    minute_input_token_limit: int | None
    day_requests: int
    day_request_limit: int | None
    day_input_tokens: int
    day_input_token_limit: int | None

    def day_fraction(self) -> float | None:
        """The larger share of the day's requests or tokens used (None: no daily limit)."""
        shares = [
            used / limit
            for used, limit in (
                (self.day_requests, self.day_request_limit),
                (self.day_input_tokens, self.day_input_token_limit),
            )
            if limit
        ]
        return max(shares) if shares else None


def limiter_of(gate: object) -> Any:
    """The `QuotaLimiter` behind `gate` (itself, or a pool's), or None."""
    from gemini_guard.quota import QuotaLimiter
    from gemini_guard.quota.pool import ProjectPool

    if isinstance(gate, ProjectPool):
        return gate.limiter
    return gate if isinstance(gate, QuotaLimiter) else None


def read_quota(limiter: Any, project: str, model: str) -> QuotaReading:
    """`limiter`'s ledger of (project, model) now (a store read)."""
    budget = limiter.budget(project, model)
    usage = limiter.usage(project, model)
    return QuotaReading(
        project=project,
        model=model,
        minute_requests=usage.requests,
        minute_request_limit=budget.requests,
        minute_input_tokens=usage.tokens,
        minute_input_token_limit=budget.tokens,
        day_requests=usage.day_requests,
        day_request_limit=budget.day_requests,
        day_input_tokens=usage.day_tokens,
        day_input_token_limit=budget.day_tokens,
    )
