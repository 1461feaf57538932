"""Per-token budgets: how many requests a minute and a day, and how many dollars a
day, each gateway client may spend.

Requests are counted by a `QuotaLimiter` of their own, with one ledger per token
(project `gateway-tokens`, "model" `gateway-token.<name>`), in the gateway's store: replicas
sharing a `redis://` or `sqlite:///` store share each token's counts exactly, as they
share the upstream quota. A request over its token's rate is refused at once (the
limiter's `max_wait` is 0), with the wait it would have needed. Dollars are counted
per process from the usage of each answer, like the Guard's own daily budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemini_guard.call.ports import Permit
from gemini_guard.clock import Clock
from gemini_guard.errors import BudgetExceeded, DailyQuotaExhausted, QuotaWait
from gemini_guard.gateway.auth import Caller
from gemini_guard.quota import QuotaLimiter
from gemini_guard.telemetry.spend import Spending, Usage
from gemini_guard.tiers import Limits

__all__ = ["CallerBudgets", "Refusal"]

_PROJECT = "gateway-tokens"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a caller's request was refused before it was sent, and when to come back."""

    reason: str  # rpm | rpd | usd_per_day
    message: str
    retry_after: float | None


def _lane(caller: Caller) -> str:
    return f"gateway-token.{caller.name}"


class CallerBudgets:
    """The budgets of every configured caller; `admit` before forwarding a request,
    `spent` with its usage after."""

    def __init__(self, callers: list[Caller], *, store: str, clock: Clock) -> None:
        limits: dict[str, Limits | dict[str, object]] = {}
        for caller in callers:
            figures = {k: v for k, v in (("rpm", caller.rpm), ("rpd", caller.rpd)) if v}
            if figures:
                limits[_lane(caller)] = dict(figures)
        self._counted = frozenset(limits)
        self._limiter = (
            QuotaLimiter(
                store=store, clock=clock, tier="auto", limits=limits, max_wait=0, adaptive=False
            )
            if limits
            else None
        )
        self._spending = {
            c.name: Spending(clock=clock, daily_budget_usd=c.usd_per_day)
            for c in callers
            if c.usd_per_day is not None
        }
        self._clock = clock

    def close(self) -> None:
        if self._limiter is not None:
            self._limiter.close()

    async def admit(self, caller: Caller, model: str | None) -> Permit | Refusal | None:
        """Count one request of `caller`: a permit to settle once it is answered (None
        when nothing is counted for it), or the refusal."""
        spending = self._spending.get(caller.name)
        if spending is not None:
            try:
                spending.check(model or "-")
            except BudgetExceeded as exc:
                return Refusal(
                    "usd_per_day",
                    f"token {caller.name!r} has spent ${exc.spent_usd:.4f} of its "
                    f"${exc.budget_usd:.2f} daily budget ({exc.day}, Pacific)",
                    max(0.0, exc.resets_at - self._clock.time()),
                )
        lane = _lane(caller)
        if self._limiter is None or lane not in self._counted:
            return None
        try:
            return await self._limiter.areserve(project=_PROJECT, model=lane, tokens=0)
        except QuotaWait as exc:
            return Refusal(
                "rpm",
                f"token {caller.name!r} is over its {caller.rpm} requests per minute",
                exc.wait,
            )
        except DailyQuotaExhausted as exc:
            return Refusal(
                "rpd",
                f"token {caller.name!r} has used its {caller.rpd} requests for today (Pacific day)",
                max(0.0, exc.reset_at - self._clock.time()),
            )

    async def sent(self, permit: Permit | None) -> None:
        """The request was forwarded: its slot counts (whatever the answer)."""
        if permit is None or self._limiter is None:
            return
        await self._limiter.aconfirm(permit)
        await self._limiter.asettle(permit, sent=True)

    def counts_dollars(self, caller: Caller) -> bool:
        """Does `caller` have a dollar budget (is an answer's usage worth reading)?"""
        return caller.name in self._spending

    def spent(self, caller: Caller, model: str, usage: Usage | None) -> None:
        spending = self._spending.get(caller.name)
        if spending is not None and usage is not None:
            spending.record(call_id="", model=model, usage=usage, project=caller.name)
