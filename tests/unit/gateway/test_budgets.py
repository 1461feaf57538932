"""Per-token budgets: requests a minute and a day (exact, in the store), dollars a day."""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.gateway.auth import Caller
from gemini_guard.gateway.budgets import CallerBudgets, Refusal
from gemini_guard.telemetry.spend import Usage

FAST = Caller("fast", None, rpm=2)
DAILY = Caller("daily", None, rpd=3)
RICH = Caller("rich", None, usd_per_day=0.01)
FREE = Caller("free", None)


@pytest.fixture
def budgets(clock: FakeClock) -> CallerBudgets:
    return CallerBudgets([FAST, DAILY, RICH, FREE], store="memory://", clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _use(budgets: CallerBudgets, caller: Caller) -> Refusal | None:
    admitted = await budgets.admit(caller, "gemini-2.5-flash")
    if isinstance(admitted, Refusal):
        return admitted
    await budgets.sent(admitted)
    return None


async def test_a_token_over_its_rate_is_refused_with_the_wait(
    budgets: CallerBudgets, clock: FakeClock
) -> None:
    assert await _use(budgets, FAST) is None
    clock.advance(10)
    assert await _use(budgets, FAST) is None
    refused = await _use(budgets, FAST)
    assert refused is not None
    assert refused.reason == "rpm"
    assert refused.retry_after == pytest.approx(50, abs=1)
    assert "fast" in refused.message
    clock.advance(51)
    assert await _use(budgets, FAST) is None
    assert await _use(budgets, FREE) is None  # no budget: never counted, never refused


async def test_a_token_out_of_requests_for_the_day_waits_for_pacific_midnight(
    budgets: CallerBudgets, clock: FakeClock
) -> None:
    for _ in range(3):
        assert await _use(budgets, DAILY) is None
        clock.advance(120)
    refused = await _use(budgets, DAILY)
    assert refused is not None
    assert refused.reason == "rpd"
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 24 * 3600


async def test_a_token_out_of_dollars_is_refused_until_the_day_ends(
    budgets: CallerBudgets,
) -> None:
    assert await _use(budgets, RICH) is None
    # 40k output tokens of gemini-2.5-flash: $0.10, past the $0.01 budget
    budgets.spent(RICH, "gemini-2.5-flash", Usage(input_tokens=100, output_tokens=40_000))
    refused = await _use(budgets, RICH)
    assert refused is not None
    assert refused.reason == "usd_per_day"
    assert "$0.01" in refused.message
    assert await _use(budgets, FAST) is None  # others keep their own budgets


async def test_budgets_are_shared_through_the_store(clock: FakeClock, tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/budgets.db"
    first = CallerBudgets([FAST], store=url, clock=clock)
    second = CallerBudgets([FAST], store=url, clock=clock)
    try:
        assert await _use(first, FAST) is None
        assert await _use(second, FAST) is None
        refused = await _use(first, FAST)
        assert refused is not None
        assert refused.reason == "rpm"
    finally:
        first.close()
        second.close()
