"""Batch arithmetic, pure: how long a workload takes under a tier's limits and what it costs.

- `finish_time`: seconds until `remaining` requests are done, given the per-minute
  limits (RPM, input TPM), the per-day limit (RPD, which resets at the Pacific
  midnight) and how much of today's quota is used; says which limit binds. Used by the
  progress display's ETA.
- `make_plan`: the `gemini-guard plan` figures for a whole input.
- `chain_limits`: the combined limits of a fallback chain (what the ETA uses).
- `auto_concurrency`: how many requests to keep in flight to use a tier's RPM.

No I/O and no clock: `now` is passed in (wall epoch seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gemini_guard.batch.reader import BatchRequest
from gemini_guard.pacific import day_start, next_reset
from gemini_guard.tiers import TIERS, Limits, Prices, model_spec
from gemini_guard.tokens import estimate_tokens

__all__ = [
    "BATCH_API_DISCOUNT",
    "Binding",
    "Finish",
    "Plan",
    "TierPlan",
    "auto_concurrency",
    "chain_limits",
    "finish_time",
    "make_plan",
    "request_rate",
]

BATCH_API_DISCOUNT = 0.5  # the Batch API costs 50% less than standard requests
_MAX_DAYS = 100_000  # a bound on the day loop (an RPD of 1 against millions of requests)

Binding = Literal["rpm", "tpm", "rpd", "rate", "none"]


@dataclass(frozen=True, slots=True)
class Finish:
    """When a workload finishes: `seconds` from now, `binding` the limit that decides it."""

    seconds: float
    binding: Binding
    days: int = 0  # Pacific midnights crossed before the end


def request_rate(limits: Limits, tokens_per_request: float) -> tuple[float, Binding]:
    """Requests per minute the per-minute limits allow, and which one binds."""
    rpm = math.inf if limits.rpm is None else float(limits.rpm)
    tpm = math.inf
    if limits.tpm is not None and tokens_per_request > 0:
        tpm = limits.tpm / tokens_per_request
    if rpm == math.inf and tpm == math.inf:
        return math.inf, "none"
    return (rpm, "rpm") if rpm <= tpm else (tpm, "tpm")


def finish_time(
    *,
    remaining: int,
    limits: Limits,
    now: float,
    tokens_per_request: float = 0.0,
    used_today: int = 0,
    observed_rate: float | None = None,
) -> Finish:
    """Seconds until `remaining` requests are done.

    Requests go at the per-minute rate (or `observed_rate` requests/second when that
    is slower: latency, concurrency); at most `limits.rpd` per Pacific day, of which
    `used_today` are already used. When today's requests run out, the rest wait for
    the next Pacific midnight, day after day.
    """
    if remaining <= 0:
        return Finish(0.0, "none")
    per_minute, binding = request_rate(limits, tokens_per_request)
    per_second = per_minute / 60.0
    if observed_rate is not None and 0 < observed_rate < per_second:
        per_second, binding = observed_rate, "rate"
    if per_second == math.inf:
        return (
            Finish(0.0, binding)
            if limits.rpd is None
            else _days(remaining, limits.rpd, now, used_today, math.inf)
        )
    if limits.rpd is None:
        return Finish(remaining / per_second, binding)
    return _days(remaining, limits.rpd, now, used_today, per_second, binding)


def _days(
    remaining: int,
    rpd: int,
    now: float,
    used_today: int,
    per_second: float,
    binding: Binding = "none",
) -> Finish:
    reset = next_reset(now)
    today = min(max(0, rpd - used_today), per_second * (reset - now))
    if remaining <= today:
        return Finish(remaining / per_second if per_second != math.inf else 0.0, binding)
    if rpd <= 0:
        return Finish(math.inf, "rpd")
    left = remaining - today
    start, days = reset, 1
    while days < _MAX_DAYS:
        end = next_reset(start)
        capacity = min(float(rpd), per_second * (end - start))
        if left <= capacity:
            tail = left / per_second if per_second != math.inf else 0.0
            return Finish(start - now + tail, "rpd", days)
        left -= capacity
        start, days = end, days + 1
    return Finish(math.inf, "rpd", days)


def chain_limits(limits: Iterable[Limits]) -> Limits:
    """The limits of a fallback chain taken as one: each figure summed over its models.

    A chain falls back to the next model when one is spent, so its requests per minute
    and per day are the sum of its models' (e.g. free tier, flash 10 RPM + flash-lite
    15 RPM: 25). A model with no limit on a figure makes the chain's unlimited there.
    An empty chain has no limits.
    """
    chain = tuple(limits)

    def total(values: list[int | None]) -> int | None:
        if not values or any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)

    return Limits(
        rpm=total([item.rpm for item in chain]),
        tpm=total([item.tpm for item in chain]),
        rpd=total([item.rpd for item in chain]),
        tpd=total([item.tpd for item in chain]),
    )


def auto_concurrency(limits: Limits, *, latency: float = 10.0, cap: int = 64) -> int:
    """In-flight requests needed to use the whole RPM when each takes `latency` seconds
    (Little's law: rate x latency), between 1 and `cap`. No RPM: `cap` // 4."""
    if limits.rpm is None:
        return max(1, cap // 4)
    return max(1, min(cap, math.ceil(limits.rpm * latency / 60.0)))


@dataclass(frozen=True, slots=True)
class TierPlan:
    """How the workload fares on one tier."""

    tier: str
    limits: Limits
    finish: Finish
    within_a_day: bool

    @property
    def minutes(self) -> float:
        return self.finish.seconds / 60.0

    @property
    def quota_days(self) -> int:
        """Pacific days the run touches (1 when it finishes on the day it starts)."""
        return self.finish.days + 1


@dataclass(frozen=True, slots=True)
class Plan:
    """The `gemini-guard plan` figures for a workload."""

    model: str
    requests: int
    input_tokens: int
    output_tokens: int  # assumed (output_tokens_per_request x requests)
    price: Prices
    chosen: TierPlan
    tiers: tuple[TierPlan, ...]

    @property
    def standard_cost(self) -> float:
        """USD at standard prices."""
        return (
            self.input_tokens * self.price.input + self.output_tokens * self.price.output
        ) / 1_000_000

    @property
    def batch_api_cost(self) -> float:
        """USD through the Batch API (50% less)."""
        return self.standard_cost * (1 - BATCH_API_DISCOUNT)

    @property
    def smallest_tier_within_a_day(self) -> str | None:
        for plan in self.tiers:
            if plan.within_a_day:
                return plan.tier
        return None


def make_plan(
    requests: Sequence[BatchRequest],
    *,
    model: str,
    tier: str,
    output_tokens_per_request: int,
    start: float,
    price: Prices | None = None,
    limits: Mapping[str, Limits] | None = None,
) -> Plan:
    """Plan `requests` on `model` (each request's own `model` is ignored here) at `tier`,
    starting at the Pacific midnight of `start` (a fresh quota day).

    `price` overrides the shipped prices, `limits` the shipped limits per tier.
    Output tokens are unknown before the run: `output_tokens_per_request` is assumed
    (capped by a request's own `max_output_tokens`).
    """
    spec = model_spec(model)
    if spec is None and (price is None or limits is None):
        raise ValueError(
            f"model {model!r} is not in the shipped table; pass its price and limits "
            "(or pick a model such as gemini-2.5-flash)"
        )
    chosen_price = price if price is not None else spec.price if spec is not None else None
    if chosen_price is None:
        raise ValueError(f"model {model!r} has no published price; pass its price")
    table = dict(limits) if limits is not None else dict(spec.tiers)  # type: ignore[union-attr]
    input_tokens = 0
    output_tokens = 0
    for request in requests:
        input_tokens += estimate_tokens(request.contents)
        cap = _max_output(request.config)
        output_tokens += min(output_tokens_per_request, cap) if cap else output_tokens_per_request
    n = len(requests)
    per_request = input_tokens / n if n else 0.0
    midnight = day_start(start)
    plans = []
    for name in TIERS:
        if name not in table:
            continue
        finish = finish_time(
            remaining=n, limits=table[name], now=midnight, tokens_per_request=per_request
        )
        plans.append(TierPlan(name, table[name], finish, finish.seconds <= 86_400.0))
    chosen = next((p for p in plans if p.tier == tier), None)
    if chosen is None:
        raise ValueError(f"no limits for tier {tier!r} of {model}; known: {', '.join(table)}")
    return Plan(
        model=model,
        requests=n,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        price=chosen_price,
        chosen=chosen,
        tiers=tuple(plans),
    )


def _max_output(config: Mapping[str, object] | None) -> int | None:
    if not config:
        return None
    value = config.get("max_output_tokens", config.get("maxOutputTokens"))
    return value if isinstance(value, int) and value > 0 else None
