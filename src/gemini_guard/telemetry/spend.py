"""What calls cost: tokens from each response's usage, priced from the model table.

Gemini bills the prompt at the input price except its cached part (cached price),
and the answer and the model's thinking both at the output price; a prompt above
200k tokens moves some models to higher prices (`tiers.call_rates`). `Spending`
keeps the totals by model and by day (the Pacific day, like the daily quotas) and,
with a daily budget, refuses a call before it is sent once the day's spend has
reached it. Totals are per process: several processes each keep their own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from gemini_guard.clock import Clock
from gemini_guard.errors import BudgetExceeded, ConfigError
from gemini_guard.pacific import day_start, next_reset, quota_day
from gemini_guard.telemetry.events import CallUsage
from gemini_guard.tiers import LONG_CONTEXT_THRESHOLD, CallRates, call_rates

__all__ = ["SpendReport", "Spending", "Usage", "call_cost", "free_call", "usage_of"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call was billed for (see `CallUsage` for what each counts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0


def _count(meta: object, name: str) -> int:
    value = getattr(meta, name, None)
    return value if isinstance(value, int) else 0


def usage_of(response: object) -> Usage | None:
    """The usage a `GenerateContentResponse` reports (None when it reports none)."""
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return None
    return Usage(
        input_tokens=_count(meta, "prompt_token_count"),
        output_tokens=_count(meta, "candidates_token_count"),
        thinking_tokens=_count(meta, "thoughts_token_count"),
        cached_tokens=_count(meta, "cached_content_token_count"),
    )


def free_call(
    call_id: str, model: str, wall: float, project: str | None, *, attempts: int, elapsed: float
) -> CallUsage:
    """The `CallUsage` of a call that bills nothing (countTokens)."""
    return CallUsage(
        timestamp=wall,
        call_id=call_id,
        model=model,
        attempts=attempts,
        elapsed=elapsed,
        input_tokens=0,
        output_tokens=0,
        thinking_tokens=0,
        cached_tokens=0,
        cost_usd=0.0,
        project=project,
    )


def call_cost(
    model: str,
    usage: Usage,
    *,
    batch: bool = False,
    prices: Mapping[str, CallRates] | None = None,
) -> float | None:
    """USD of one call of `model` (None for a model with no known prices).
    `prices` replaces the shipped table's rates per model (from configuration)."""
    rates = (prices or {}).get(model.removeprefix("models/")) or call_rates(
        model, prompt_tokens=usage.input_tokens, batch=batch
    )
    return None if rates is None else _priced(rates, usage)


_UNKNOWN = object()


def _priced(rates: CallRates, usage: Usage) -> float:
    fresh = max(0, usage.input_tokens - usage.cached_tokens)
    micro = (
        fresh * rates.input
        + usage.cached_tokens * rates.cached_input
        + (usage.output_tokens + usage.thinking_tokens) * rates.output
    )
    return micro / 1_000_000


@dataclass(frozen=True, slots=True)
class SpendReport:
    """Spend so far: USD by model, by day (ISO date), and by (day, model)."""

    total_usd: float
    by_model: dict[str, float]
    by_day: dict[str, float]
    by_day_and_model: dict[tuple[str, str], float]
    calls: int
    unpriced_calls: int  # successful calls of models with no known prices
    today_usd: float
    budget_usd: float | None


class Spending:
    """Running spend of one Guard, and its optional daily budget (USD)."""

    def __init__(
        self,
        *,
        clock: Clock,
        daily_budget_usd: float | None = None,
        prices: Mapping[str, CallRates] | None = None,
    ) -> None:
        if daily_budget_usd is not None and not daily_budget_usd > 0:
            raise ConfigError(
                f"daily_budget_usd must be a positive number of US dollars, got "
                f"{daily_budget_usd!r}; leave it None for no budget"
            )
        self._clock = clock
        self.daily_budget_usd = daily_budget_usd
        self._prices = dict(prices or {})
        self._lock = threading.Lock()
        self._cells: dict[tuple[str, str], float] = {}
        self._calls = 0
        self._unpriced = 0
        # Worked out once, not on every call: the Pacific day (its key, and the span
        # of wall time it covers) and each model's rates.
        self._day: tuple[float, float, str] = (0.0, 0.0, "")
        self._rates: dict[tuple[str, bool, bool], CallRates | None] = {}

    def _day_key(self, now: float) -> str:
        start, end, key = self._day
        if not start <= now < end:
            key = quota_day(now).isoformat()
            start, end = day_start(now), next_reset(now)
            self._day = (start, end, key)
        return key

    def _cost(self, model: str, usage: Usage, batch: bool) -> float | None:
        rates = self._prices.get(model.removeprefix("models/"))
        if rates is None:
            long = usage.input_tokens > LONG_CONTEXT_THRESHOLD
            found = self._rates.get((model, long, batch), _UNKNOWN)
            if found is _UNKNOWN:
                found = call_rates(model, prompt_tokens=usage.input_tokens, batch=batch)
                self._rates[(model, long, batch)] = found
            rates = found  # type: ignore[assignment]
        return None if rates is None else _priced(rates, usage)

    def check(self, model: str) -> None:
        """Raise `BudgetExceeded` when today's spend has reached the budget."""
        budget = self.daily_budget_usd
        if budget is None:
            return
        now = self._clock.time()
        day = quota_day(now).isoformat()
        spent = self._today(day)
        if spent >= budget:
            raise BudgetExceeded(
                f"daily budget spent: ${spent:.4f} of ${budget:.2f} on {day} (Pacific); "
                f"the call to {model} was not sent. It resets at Pacific midnight; raise "
                "daily_budget_usd to allow more",
                spent_usd=spent,
                budget_usd=budget,
                day=day,
                resets_at=next_reset(now),
            )

    def _today(self, day: str) -> float:
        with self._lock:
            return sum(v for (d, _), v in self._cells.items() if d == day)

    def record(
        self,
        *,
        call_id: str,
        model: str,
        usage: Usage,
        project: str | None = None,
        batch: bool = False,
        attempts: int = 1,
        elapsed: float = 0.0,
    ) -> CallUsage:
        """Add one successful call's usage; the `CallUsage` event that tells it."""
        now = self._clock.time()
        cost = self._cost(model, usage, batch)
        key = (self._day_key(now), model)
        with self._lock:
            self._calls += 1
            if cost is None:
                self._unpriced += 1
            else:
                self._cells[key] = self._cells.get(key, 0.0) + cost
        return CallUsage(
            timestamp=now,
            call_id=call_id,
            model=model,
            attempts=attempts,
            elapsed=elapsed,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            thinking_tokens=usage.thinking_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=cost,
            project=project,
        )

    def report(self) -> SpendReport:
        today = quota_day(self._clock.time()).isoformat()
        with self._lock:
            cells = dict(self._cells)
            calls, unpriced = self._calls, self._unpriced
        by_model: dict[str, float] = {}
        by_day: dict[str, float] = {}
        for (day, model), usd in sorted(cells.items()):
            by_model[model] = by_model.get(model, 0.0) + usd
            by_day[day] = by_day.get(day, 0.0) + usd
        return SpendReport(
            total_usd=sum(cells.values()),
            by_model=by_model,
            by_day=by_day,
            by_day_and_model=cells,
            calls=calls,
            unpriced_calls=unpriced,
            today_usd=by_day.get(today, 0.0),
            budget_usd=self.daily_budget_usd,
        )
