"""Plan arithmetic and the ETA under each binding limit, against hand-computed figures."""

from __future__ import annotations

import datetime as dt

import pytest

from gemini_guard.batch.planner import (
    Finish,
    auto_concurrency,
    chain_limits,
    finish_time,
    make_plan,
)
from gemini_guard.batch.reader import BatchRequest
from gemini_guard.cli.plan import price_override
from gemini_guard.config import GuardConfig
from gemini_guard.pacific import PACIFIC
from gemini_guard.tiers import Limits, Prices

# 2026-01-01T00:00:00Z = 2025-12-31 16:00 PST; the next Pacific midnight is 8 h away.
NOW = 1_767_225_600.0
TO_RESET = 8 * 3600.0


def test_rpm_binds() -> None:
    # 100 tokens/request under 250,000 TPM allows 2,500/min; RPM 10 is smaller.
    # 25 requests / 10 per minute = 2.5 min = 150 s.
    finish = finish_time(
        remaining=25, limits=Limits(rpm=10, tpm=250_000), now=NOW, tokens_per_request=100
    )
    assert finish.binding == "rpm"
    assert finish.seconds == pytest.approx(150.0)


def test_tpm_binds() -> None:
    # 500 tokens/request under 1,000 TPM: 2 requests/min (RPM 10 is larger).
    # 6 requests / 2 per minute = 3 min = 180 s.
    finish = finish_time(
        remaining=6, limits=Limits(rpm=10, tpm=1_000), now=NOW, tokens_per_request=500
    )
    assert finish.binding == "tpm"
    assert finish.seconds == pytest.approx(180.0)


def test_rpd_binds_and_waits_for_the_pacific_midnight() -> None:
    # RPD 100 with 90 used: 10 go today (in 60 s at 10/min). The other 15 wait for the
    # reset 8 h away, then take 15 / 10 per minute = 90 s: 28,800 + 90 = 28,890 s.
    finish = finish_time(remaining=25, limits=Limits(rpm=10, rpd=100), now=NOW, used_today=90)
    assert finish.binding == "rpd"
    assert finish.days == 1
    assert finish.seconds == pytest.approx(TO_RESET + 90.0)


def test_rpd_over_several_days() -> None:
    # Today's 100 are spent; 250 left: 100 on Jan 1, 100 on Jan 2, 50 on Jan 3 (Pacific).
    # Jan 3 starts 8 h + 2 x 86,400 s from now (no DST change then); 50 at 10/min = 300 s.
    finish = finish_time(remaining=250, limits=Limits(rpm=10, rpd=100), now=NOW, used_today=100)
    assert finish.binding == "rpd"
    assert finish.days == 3
    assert finish.seconds == pytest.approx(TO_RESET + 2 * 86_400 + 300.0)


def test_rpd_day_lengths_follow_daylight_saving() -> None:
    # 2026-03-08 is 23 hours long in Los Angeles (clocks spring forward).
    start = dt.datetime(2026, 3, 8, tzinfo=PACIFIC).timestamp()
    finish = finish_time(remaining=150, limits=Limits(rpm=60, rpd=100), now=start)
    # 100 on Mar 8 (100 s), 50 after the next midnight, 23 h later: 82,800 + 50 s.
    assert finish.seconds == pytest.approx(23 * 3600 + 50.0)


def test_observed_rate_slower_than_the_quota_binds() -> None:
    # RPM 60 would allow 1/s; the run only achieves 0.5/s: 30 requests take 60 s.
    finish = finish_time(remaining=30, limits=Limits(rpm=60), now=NOW, observed_rate=0.5)
    assert finish.binding == "rate"
    assert finish.seconds == pytest.approx(60.0)


def test_nothing_left_and_no_limits() -> None:
    assert finish_time(remaining=0, limits=Limits(rpm=1), now=NOW).seconds == 0.0
    assert finish_time(remaining=5, limits=Limits(), now=NOW).binding == "none"


def test_auto_concurrency_follows_rpm() -> None:
    # Little's law at 10 s per request: 2,000 RPM x 10 / 60 = 333.3 -> capped at 64;
    # 10 RPM x 10 / 60 = 1.67 -> 2; 5 RPM -> 0.83 -> 1.
    assert auto_concurrency(Limits(rpm=2_000)) == 64
    assert auto_concurrency(Limits(rpm=10)) == 2
    assert auto_concurrency(Limits(rpm=5)) == 1


def _requests(n: int, chars: int) -> list[BatchRequest]:
    return [BatchRequest(id=str(i), contents="x" * chars) for i in range(n)]


def test_plan_1000_pro_prompts_on_the_free_tier_take_ten_days() -> None:
    # 1,000 prompts of 40 characters = 10 tokens each: 10,000 input tokens.
    # Output assumed 500 each: 500,000 tokens.
    # gemini-2.5-pro: $1.25 input, $10.00 output per 1M tokens:
    #   10,000 x 1.25 / 1e6 = $0.0125;  500,000 x 10 / 1e6 = $5.00;  total $5.0125.
    # Batch API, 50% less: $2.50625.
    # Free tier: 5 RPM, 100 RPD. 100 a day (20 min each day at 5/min): 10 quota days;
    # the last 100 start on day 10, 9 x 86,400 s after the first midnight, and take 1,200 s.
    # Tier 1: 150 RPM, 10,000 RPD: 1,000 / 150 = 6.667 min = 400 s, within a day.
    start = dt.datetime(2026, 1, 10, 12, tzinfo=PACIFIC).timestamp()
    plan = make_plan(
        _requests(1000, 40),
        model="gemini-2.5-pro",
        tier="free",
        output_tokens_per_request=500,
        start=start,
    )
    assert plan.input_tokens == 10_000
    assert plan.output_tokens == 500_000
    assert plan.standard_cost == pytest.approx(5.0125)
    assert plan.batch_api_cost == pytest.approx(2.50625)
    assert plan.chosen.finish.binding == "rpd"
    assert plan.chosen.quota_days == 10
    assert plan.chosen.finish.seconds == pytest.approx(9 * 86_400 + 1_200)
    assert plan.smallest_tier_within_a_day == "tier1"
    tier1 = next(p for p in plan.tiers if p.tier == "tier1")
    assert tier1.finish.seconds == pytest.approx(400.0)
    assert tier1.finish.binding == "rpm"


def test_plan_caps_output_by_max_output_tokens_and_minutes_when_rpd_fits() -> None:
    # 20 flash prompts of 400 chars = 100 tokens each: 2,000 input tokens; output
    # min(500, max_output_tokens=64) = 64 each: 1,280 tokens.
    # Cost: 2,000 x 0.30 / 1e6 + 1,280 x 2.50 / 1e6 = 0.0006 + 0.0032 = $0.0038.
    # Free flash: 10 RPM -> 20 / 10 = 2 min = 120 s (RPD 250 is not reached).
    requests = [
        BatchRequest(id=str(i), contents="y" * 400, config={"max_output_tokens": 64})
        for i in range(20)
    ]
    plan = make_plan(
        requests,
        model="gemini-2.5-flash",
        tier="free",
        output_tokens_per_request=500,
        start=NOW,
    )
    assert plan.output_tokens == 1_280
    assert plan.standard_cost == pytest.approx(0.0038)
    assert plan.chosen.finish.seconds == pytest.approx(120.0)
    assert plan.chosen.finish.binding == "rpm"
    assert plan.smallest_tier_within_a_day == "free"


def test_plan_of_an_unknown_model_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="not in the shipped table"):
        make_plan(
            _requests(1, 4), model="gemini-9", tier="free", output_tokens_per_request=1, start=NOW
        )


def test_chain_limits_add_up_the_fallback_models() -> None:
    flash = Limits(rpm=10, tpm=250_000, rpd=250)
    lite = Limits(rpm=15, tpm=250_000, rpd=1000)
    assert chain_limits([flash, lite]) == Limits(rpm=25, tpm=500_000, rpd=1250, tpd=None)
    # A model without a limit on a figure leaves the chain unlimited there.
    assert chain_limits([flash, Limits(rpm=4000, tpm=4_000_000)]) == Limits(
        rpm=4010, tpm=4_250_000, rpd=None
    )
    assert chain_limits([]) == Limits()


def test_eta_of_a_chain_uses_the_sum_of_its_rpm() -> None:
    # 100 requests at 10 + 15 RPM: 4 minutes; on flash alone, 10 minutes.
    chain = chain_limits([Limits(rpm=10, rpd=250), Limits(rpm=15, rpd=1000)])
    assert finish_time(remaining=100, limits=chain, now=NOW) == Finish(240.0, "rpm")
    assert finish_time(remaining=100, limits=Limits(rpm=10, rpd=250), now=NOW).seconds == 600.0


def test_eta_of_a_chain_uses_the_sum_of_its_rpd() -> None:
    # 1,500 requests, 250 + 1000 RPD: 1,250 today (8 h to the reset: RPM does not bind
    # at 25/min x 480 min = 12,000), the other 250 after the Pacific midnight, at
    # 25 RPM: 10 minutes past it. Flash alone would need 5 more days.
    chain = chain_limits([Limits(rpm=10, rpd=250), Limits(rpm=15, rpd=1000)])
    finish = finish_time(remaining=1500, limits=chain, now=NOW)
    assert finish == Finish(TO_RESET + 600.0, "rpd", 1)
    alone = finish_time(remaining=1500, limits=Limits(rpm=10, rpd=250), now=NOW)
    assert alone.days == 5


def test_price_override_from_the_config_replaces_the_shipped_prices() -> None:
    config = GuardConfig.model_validate(
        {
            "prices": {
                "gemini-2.5-flash": {"input": 0.2, "output": 1.0},
                "my-model": {"input": 1.0, "output": 3.0},
            }
        }
    )
    # cached_input not given: the shipped figure for a known model, the input price else.
    assert price_override(config, "gemini-2.5-flash") == Prices(0.2, 1.0, 0.03)
    assert price_override(config, "my-model") == Prices(1.0, 3.0, 1.0)
    assert price_override(config, "gemini-2.5-pro") is None
    # 1,000 requests of 10 tokens, 500 output each: 10,000 x 0.2/1M + 500,000 x 1.0/1M.
    plan = make_plan(
        _requests(1000, 40),
        model="gemini-2.5-flash",
        tier="free",
        output_tokens_per_request=500,
        start=NOW,
        price=price_override(config, "gemini-2.5-flash"),
    )
    assert plan.standard_cost == pytest.approx(0.502)
    assert plan.batch_api_cost == pytest.approx(0.251)
