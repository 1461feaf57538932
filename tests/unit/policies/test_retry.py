"""Retry policy: the backoff table, server delays, presets and the shared budget."""

from __future__ import annotations

import random

import pytest

from gemini_guard.diagnosis import Category
from gemini_guard.policies import (
    RetryBudget,
    RetryPolicy,
    RetrySlots,
    compute_backoff,
    retry_delay,
    retry_spacing,
    spends_budget,
)
from tests.unit.policies._diagnoses import bare_429_diagnosis, diag

NO_JITTER = RetryPolicy(jitter="none")


@pytest.mark.parametrize(
    ("retry", "expected"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0), (6, 60.0), (50, 60.0)],
)
def test_backoff_table_doubles_from_base_up_to_cap(retry: int, expected: float) -> None:
    assert compute_backoff(retry, NO_JITTER, random.Random(0)) == expected


def test_backoff_survives_huge_retry_numbers() -> None:
    assert compute_backoff(10_000, NO_JITTER, random.Random(0)) == 60.0


@pytest.mark.parametrize("retry", range(8))
def test_additive_jitter_adds_at_most_base_and_never_passes_cap(retry: int) -> None:
    policy = RetryPolicy()
    exponential = min(60.0, 2.0**retry)
    delays = [compute_backoff(retry, policy, random.Random(seed)) for seed in range(200)]
    assert all(exponential <= d <= min(60.0, exponential + 1.0) for d in delays)
    if exponential < 60.0:
        assert len(set(delays)) > 100  # really spread, not a constant


def test_full_jitter_spans_zero_to_the_exponential() -> None:
    policy = RetryPolicy(jitter="full")
    delays = [compute_backoff(3, policy, random.Random(seed)) for seed in range(500)]
    assert min(delays) < 1.0
    assert max(delays) > 7.0
    assert all(0.0 <= d <= 8.0 for d in delays)


def test_backoff_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    first = [compute_backoff(n, policy, random.Random(42)) for n in range(6)]
    again = [compute_backoff(n, policy, random.Random(42)) for n in range(6)]
    assert first == again


def test_server_delay_is_honoured_over_backoff() -> None:
    policy = RetryPolicy(server_delay_jitter=0.0)
    d = diag(Category.RATE_LIMITED, retry_after=37.0)
    assert retry_delay(d, 0, policy, random.Random(1)) == 37.0
    # ... with a little jitter so waiting clients don't come back in one burst
    jittered = RetryPolicy()
    delays = {retry_delay(d, 0, jittered, random.Random(s)) for s in range(50)}
    assert all(37.0 <= x <= 38.0 for x in delays)
    assert len(delays) > 40


def test_without_server_delay_backoff_applies() -> None:
    d = diag(Category.SERVER_ERROR)
    assert retry_delay(d, 2, NO_JITTER, random.Random(1)) == 4.0


def test_presets_follow_the_guide() -> None:
    assert (RetryPolicy.DEFAULT.max_retries, RetryPolicy.DEFAULT.cap) == (5, 60.0)
    assert RetryPolicy.DEFAULT.base == 1.0
    assert (RetryPolicy.INTERACTIVE.max_retries, RetryPolicy.INTERACTIVE.cap) == (3, 10.0)
    assert (RetryPolicy.BATCH.max_retries, RetryPolicy.BATCH.cap) == (10, 120.0)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="cap"):
        RetryPolicy(base=10, cap=5)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter="lots")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=0)
    assert RetryPolicy.DEFAULT.with_options(max_retries=2).max_retries == 2


def test_budget_spends_on_retries_only_and_refills_on_success() -> None:
    budget = RetryBudget(max_tokens=4, token_ratio=2, retry_cost=1)
    for _ in range(3):
        budget.record_retry("p/pro")
    assert budget.tokens("p/pro") == 1.0
    assert budget.allows_retry("p/pro")  # one retry's cost is left
    budget.record_retry("p/pro")
    assert not budget.allows_retry("p/pro")
    assert budget.allows_retry("p/flash")  # each model has its own bucket
    budget.record_success("p/pro")
    assert budget.tokens("p/pro") == 2.0
    for _ in range(10):
        budget.record_success("p/pro")
    assert budget.tokens("p/pro") == 4.0  # never above max


def test_budget_never_goes_negative() -> None:
    budget = RetryBudget(max_tokens=4, token_ratio=1)
    for _ in range(20):
        budget.record_retry()
    assert budget.tokens() == 0.0
    budget.record_success()
    assert budget.allows_retry()


def test_which_failures_spend_from_the_budget() -> None:
    assert spends_budget(diag(Category.OVERLOADED))
    assert spends_budget(diag(Category.SERVER_ERROR))
    assert spends_budget(diag(Category.NETWORK))
    assert spends_budget(bare_429_diagnosis())  # capacity, like a 503
    # a wait the server named is pacing, not a storm
    assert not spends_budget(diag(Category.RATE_LIMITED, retry_after=30.0))
    assert not spends_budget(diag(Category.RATE_LIMITED))  # a named per-minute quota
    assert not spends_budget(diag(Category.BAD_REQUEST))


def _drift(error_rate: float, attempts: int, seed: int) -> tuple[float, int]:
    """The default budget on one model where every failure is retried (the worst
    case: no fallback hop to spend nothing): its lowest level and the retries it
    refused over `attempts` attempts."""
    budget = RetryBudget()
    rng = random.Random(seed)
    lowest, refused = budget.tokens(), 0
    for _ in range(attempts):
        if rng.random() < error_rate:
            if budget.allows_retry():
                budget.record_retry()
            else:
                refused += 1
        else:
            budget.record_success()
        lowest = min(lowest, budget.tokens())
    return lowest, refused


@pytest.mark.parametrize(("error_rate", "floor"), [(0.10, 12.0), (0.35, 6.0)])
def test_the_default_budget_never_stops_retries_on_a_flaky_model(
    error_rate: float, floor: float
) -> None:
    # Drift per attempt >= (1 - p) * 2 - p: +1.7 at 10%, +0.95 at 35%: the bucket
    # stays near full.
    for seed in range(20):
        lowest, refused = _drift(error_rate, 2_000, seed)
        assert refused == 0
        assert lowest >= floor


def test_at_fifty_percent_the_budget_almost_never_refuses_even_in_the_worst_case() -> None:
    # +0.5 per attempt: the bucket wanders but 20 tokens are a deep reserve. Even
    # with every failure retried (no fallback hop), 40,000 attempts see at most a
    # couple of refused retries.
    refused = sum(_drift(0.5, 2_000, seed)[1] for seed in range(20))
    assert refused <= 2


def test_the_default_budget_stops_a_retry_storm_on_a_model_that_is_down() -> None:
    lowest, refused = _drift(1.0, 1_000, 0)
    assert lowest == 0.0
    assert refused == 1_000 - 20  # twenty retries, then one request per call
    # and it drains at 90% as well: about -0.7 per attempt
    _, refused = _drift(0.9, 1_000, 0)
    assert refused > 600


def test_budget_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        RetryBudget(max_tokens=0)
    with pytest.raises(ValueError, match="token_ratio"):
        RetryBudget(max_tokens=1, token_ratio=2)
    with pytest.raises(ValueError, match="retry_cost"):
        RetryBudget(max_tokens=1, retry_cost=2)


def test_retry_spacing_comes_from_the_per_minute_request_limit() -> None:
    assert retry_spacing(diag(Category.RATE_LIMITED, retry_after=5.0)) == 6.0  # limit 10
    assert retry_spacing(diag(Category.DAILY_QUOTA_EXHAUSTED)) == 0.0
    assert retry_spacing(diag(Category.SERVER_ERROR)) == 0.0


def test_waiters_on_one_quota_line_up_instead_of_returning_together() -> None:
    slots = RetrySlots()
    told = [slots.schedule("p/flash", now=100.0, delay=4.0, spacing=6.0) for _ in range(3)]
    assert told == [4.0, 10.0, 16.0]
    # another model has its own line
    assert slots.schedule("p/pro", now=100.0, delay=4.0, spacing=12.0) == 4.0
    # once the line has moved on, a later wait is what the server said
    assert slots.schedule("p/flash", now=200.0, delay=30.0, spacing=6.0) == 30.0
    # no spacing known: the server's delay as is
    assert slots.schedule("p/flash", now=200.0, delay=1.0, spacing=0.0) == 1.0


def test_a_fresh_call_joins_the_end_of_the_line_instead_of_jumping_it() -> None:
    slots = RetrySlots()
    assert slots.join("p/flash", now=0.0) == 0.0  # nobody waiting
    slots.schedule("p/flash", now=0.0, delay=30.0, spacing=6.0)  # a 429: back at 30
    assert slots.join("p/flash", now=10.0) == 26.0  # slot 36
    assert slots.join("p/flash", now=10.0) == 32.0  # slot 42
    assert slots.schedule("p/flash", now=10.0, delay=20.0, spacing=6.0) == 38.0  # slot 48
    assert slots.join("p/flash", now=100.0) == 0.0  # the line has gone
