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
)
from tests.unit.policies._diagnoses import diag

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


def test_budget_stops_retries_below_half_and_refills_on_success() -> None:
    budget = RetryBudget(max_tokens=10, token_ratio=0.5)
    upstream = diag(Category.SERVER_ERROR)
    for _ in range(4):
        budget.record_failure(upstream)
    assert budget.allows_retry()  # 6 > 5
    budget.record_failure(upstream)
    assert not budget.allows_retry()  # 5 is not above half
    budget.record_success()
    assert budget.allows_retry()  # 5.5
    for _ in range(100):
        budget.record_success()
    assert budget.tokens == 10.0  # never above max


def test_budget_never_goes_negative() -> None:
    budget = RetryBudget(max_tokens=4, token_ratio=1)
    for _ in range(20):
        budget.record_failure(diag(Category.OVERLOADED))
    assert budget.tokens == 0.0
    for _ in range(2):
        budget.record_success()
    assert not budget.allows_retry()  # exactly half
    budget.record_success()
    assert budget.allows_retry()


def test_budget_ignores_quota_waits_and_request_errors() -> None:
    budget = RetryBudget(max_tokens=2, token_ratio=0.1)
    for _ in range(10):
        budget.record_failure(diag(Category.RATE_LIMITED, retry_after=30.0))
        budget.record_failure(diag(Category.BAD_REQUEST))
    assert budget.tokens == 2.0


def test_budget_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        RetryBudget(max_tokens=0)
    with pytest.raises(ValueError, match="token_ratio"):
        RetryBudget(max_tokens=1, token_ratio=2)


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
