"""Pricing a call's usage, and the daily budget."""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.errors import BudgetExceeded, ConfigError, GuardError
from gemini_guard.telemetry.spend import Spending, Usage, call_cost, usage_of
from gemini_guard.tiers import CallRates, call_rates

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("model", "usage", "usd"),
    [
        # flash: $0.30 in, $2.50 out, $0.03 cached, per 1M
        (FLASH, Usage(input_tokens=1_000_000), 0.30),
        (FLASH, Usage(output_tokens=1_000_000), 2.50),
        # thinking is billed as output
        (FLASH, Usage(output_tokens=500_000, thinking_tokens=500_000), 2.50),
        # the cached part of the prompt at the cached price, the rest at the input price
        (FLASH, Usage(input_tokens=1_000_000, cached_tokens=400_000), 0.6 * 0.30 + 0.4 * 0.03),
        # pro: $1.25 / $10 up to 200k prompt tokens ...
        (PRO, Usage(input_tokens=200_000, output_tokens=1_000), 0.25 + 0.01),
        # ... and $2.50 / $15 for the whole call above it
        (PRO, Usage(input_tokens=200_001, output_tokens=1_000), 200_001 * 2.5e-6 + 0.015),
    ],
)
def test_call_cost(model: str, usage: Usage, usd: float) -> None:
    assert call_cost(model, usage) == pytest.approx(usd)


def test_the_batch_api_costs_half() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=2_000)
    assert call_cost(FLASH, usage, batch=True) == pytest.approx(call_cost(FLASH, usage) / 2)  # type: ignore[operator]


def test_unknown_models_have_no_price_unless_configured() -> None:
    usage = Usage(input_tokens=1_000_000)
    assert call_cost("gemini-9-ultra", usage) is None
    assert call_rates("gemini-9-ultra") is None
    own = {"gemini-9-ultra": CallRates(input=4.0, output=8.0, cached_input=1.0)}
    assert call_cost("models/gemini-9-ultra", usage, prices=own) == pytest.approx(4.0)


def test_usage_of_reads_the_sdk_usage_metadata() -> None:
    from google.genai import types

    response = types.GenerateContentResponse(
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=120,
            candidates_token_count=30,
            thoughts_token_count=50,
            cached_content_token_count=100,
        )
    )
    assert usage_of(response) == Usage(120, 30, 50, 100)
    assert usage_of(types.GenerateContentResponse()) is None


def test_spend_by_model_and_by_pacific_day() -> None:
    clock = FakeClock(start=1_767_225_600.0)  # 2026-01-01 00:00 UTC = 2025-12-31 16:00 PST
    spending = Spending(clock=clock)
    spending.record(call_id="a", model=FLASH, usage=Usage(input_tokens=1_000_000))
    clock.advance(9 * 3600)  # 01:00 Pacific on 2026-01-01
    spending.record(call_id="b", model=PRO, usage=Usage(output_tokens=100_000))
    event = spending.record(call_id="c", model="gemini-9-ultra", usage=Usage(input_tokens=5))
    assert event.cost_usd is None
    report = spending.report()
    assert report.by_day == {"2025-12-31": pytest.approx(0.30), "2026-01-01": pytest.approx(1.0)}
    assert report.by_model == {FLASH: pytest.approx(0.30), PRO: pytest.approx(1.0)}
    assert report.total_usd == pytest.approx(1.30)
    assert report.today_usd == pytest.approx(1.0)
    assert (report.calls, report.unpriced_calls) == (3, 1)


def test_the_budget_refuses_once_reached_and_says_by_how_much() -> None:
    clock = FakeClock()
    spending = Spending(clock=clock, daily_budget_usd=0.50)
    spending.check(FLASH)
    spending.record(call_id="a", model=FLASH, usage=Usage(output_tokens=100_000))  # $0.25
    spending.check(FLASH)
    spending.record(call_id="b", model=FLASH, usage=Usage(output_tokens=100_000))  # $0.50
    with pytest.raises(BudgetExceeded) as caught:
        spending.check(PRO)
    error = caught.value
    assert isinstance(error, GuardError)
    assert error.spent_usd == pytest.approx(0.50)
    assert error.budget_usd == 0.50
    assert "$0.5000 of $0.50" in str(error)
    assert PRO in str(error)
    clock.set_time(error.resets_at)
    spending.check(PRO)  # a new day


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_budget_must_be_positive(bad: float) -> None:
    with pytest.raises(ConfigError, match="daily_budget_usd must be a positive"):
        Spending(clock=FakeClock(), daily_budget_usd=bad)
