"""Every fallback trigger, fail-fast on request errors, and per-day parking."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from google.genai import errors

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, diagnose
from gemini_guard.pacific import next_reset
from gemini_guard.policies import (
    Fail,
    FallBack,
    ModelProgress,
    ParkingLot,
    Retry,
    RetryPolicy,
    decide_after_failure,
)
from gemini_guard.policies.decisions import Decision
from gemini_guard.policies.fallback import REQUEST_ERRORS
from tests.unit.policies._diagnoses import bare_429_diagnosis, diag

LA = ZoneInfo("America/Los_Angeles")
POLICY = RetryPolicy(jitter="none", server_delay_jitter=0.0)
NOW_WALL = FakeClock().time()


def decide(
    category: Category,
    *,
    failures: int = 1,
    has_next: bool = True,
    retry_after: float | None = None,
    policy: RetryPolicy = POLICY,
    budget_allows: bool = True,
    now: float = 0.0,
    deadline_at: float | None = None,
    shrunk: bool = False,
    now_wall: float = NOW_WALL,
    model_open: bool = False,
) -> Decision:
    return decide_after_failure(
        diag(category, retry_after=retry_after),
        progress=ModelProgress(failures=failures, shrunk=shrunk),
        policy=policy,
        has_next=has_next,
        budget_allows=budget_allows,
        now=now,
        now_wall=now_wall,
        deadline_at=deadline_at,
        rng=random.Random(0),
        model_open=model_open,
    )


@pytest.mark.parametrize("category", sorted(REQUEST_ERRORS))
@pytest.mark.parametrize("has_next", [True, False])
def test_request_errors_fail_at_once_without_fallback(category: Category, has_next: bool) -> None:
    decision = decide(category, has_next=has_next)
    assert isinstance(decision, Fail)
    assert decision.kind == "rejected"


def test_not_retryable_unknown_fails_at_once() -> None:
    decision = decide(Category.UNKNOWN)
    assert isinstance(decision, Fail)
    assert decision.kind == "rejected"


@pytest.mark.parametrize(
    "category", [Category.OVERLOADED, Category.SERVER_ERROR, Category.NETWORK, Category.BAD_GATEWAY]
)
def test_transient_failures_retry_the_model_then_fall_back_after_fallback_after(
    category: Category,
) -> None:
    # One failed request says little about a model: retry it with backoff first...
    assert decide(category, failures=1) == Retry(1.0, str(category))
    assert decide(category, failures=2) == Retry(2.0, str(category))
    # ...and fall back once it failed `fallback_after` (3) times in this call.
    third = decide(category, failures=3)
    assert isinstance(third, FallBack)
    assert "3 failed attempts" in third.reason


def test_overloaded_on_the_last_model_retries_with_backoff() -> None:
    assert decide(Category.OVERLOADED, has_next=False) == Retry(1.0, "overloaded")
    assert decide(Category.OVERLOADED, has_next=False, failures=3) == Retry(4.0, "overloaded")


def test_an_open_breaker_on_the_model_falls_back_at_once_instead_of_backing_off() -> None:
    decision = decide(Category.OVERLOADED, model_open=True)
    assert isinstance(decision, FallBack)
    assert "breaker is open" in decision.reason
    last = decide(Category.OVERLOADED, model_open=True, has_next=False)
    assert isinstance(last, Fail)
    assert last.kind == "exhausted"


def _bare_429(failures: int, *, budget_allows: bool = True, seed: int = 0) -> Decision:
    return decide_after_failure(
        bare_429_diagnosis(),
        progress=ModelProgress(failures=failures),
        policy=RetryPolicy(),  # the default: additive jitter, the guide's schedule
        has_next=True,
        budget_allows=budget_allows,
        now=0.0,
        now_wall=NOW_WALL,
        deadline_at=None,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize(
    "message",
    [
        "Resource has been exhausted (e.g. check quota).",
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429",
    ],
)
def test_a_bare_429_retries_the_same_model_with_backoff_then_falls_back(message: str) -> None:
    # A 429 with no QuotaFailure and no RetryInfo is the server short of capacity,
    # not a quota it can name: retried on the same model on the guide's schedule
    # (2**n s plus up to 1 s of jitter), then a fallback after `fallback_after` (3).
    # Neither an immediate fallback nor a long quota wait.
    diagnosis = diagnose(
        errors.ClientError(
            429, {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
        )
    )
    assert diagnosis == bare_429_diagnosis(message)
    delays = []
    for failures in (1, 2):
        decision = _bare_429(failures, seed=failures)
        assert isinstance(decision, Retry)
        assert "transient capacity" in decision.reason
        delays.append(decision.delay)
    assert 1.0 <= delays[0] < 2.0
    assert 2.0 <= delays[1] < 3.0
    third = _bare_429(3)
    assert isinstance(third, FallBack)
    assert "3 failed attempts" in third.reason
    assert third.park_until is None  # not parked: it is not a per-day quota


def test_a_bare_429_is_held_back_by_a_spent_budget_like_a_503() -> None:
    decision = _bare_429(1, budget_allows=False)
    assert isinstance(decision, FallBack)
    assert "budget" in decision.reason


def test_fallback_after_is_configurable() -> None:
    policy = POLICY.with_options(fallback_after=1)
    assert isinstance(decide(Category.SERVER_ERROR, policy=policy), FallBack)


def test_last_model_retries_up_to_max_retries_then_fails() -> None:
    # 6 attempts = the first + max_retries (5)
    assert decide(Category.SERVER_ERROR, has_next=False, failures=5) == Retry(16.0, "server_error")
    final = decide(Category.SERVER_ERROR, has_next=False, failures=6)
    assert isinstance(final, Fail)
    assert final.kind == "exhausted"


def test_not_found_falls_back_with_a_loud_warning() -> None:
    decision = decide(Category.NOT_FOUND)
    assert isinstance(decision, FallBack)
    assert decision.warning is not None
    assert "deprecated" in decision.warning
    last = decide(Category.NOT_FOUND, has_next=False)
    assert isinstance(last, Fail)
    assert last.kind == "rejected"


def test_daily_quota_parks_until_pacific_midnight_and_falls_back() -> None:
    decision = decide(Category.DAILY_QUOTA_EXHAUSTED, retry_after=20.0)
    assert decision == FallBack("daily_quota_exhausted", park_until=next_reset(NOW_WALL))
    last = decide(Category.DAILY_QUOTA_EXHAUSTED, has_next=False, retry_after=20.0)
    assert last == Fail("daily_quota", "daily_quota_exhausted", reset_at=next_reset(NOW_WALL))


def test_no_quota_falls_back_and_fails_as_a_request_error_on_the_last_model() -> None:
    decision = decide(Category.NO_QUOTA)
    assert isinstance(decision, FallBack)
    assert decision.park_until == next_reset(NOW_WALL)
    last = decide(Category.NO_QUOTA, has_next=False)
    assert isinstance(last, Fail)
    assert last.kind == "rejected"


def test_rate_limit_honours_the_server_delay() -> None:
    assert decide(Category.RATE_LIMITED, retry_after=37.0) == Retry(37.0, "rate_limited")


def test_server_delay_over_the_cap_falls_back_or_fails_instead_of_sleeping() -> None:
    policy = POLICY.with_options(max_retry_after=30.0)
    decision = decide(Category.RATE_LIMITED, retry_after=45.0, policy=policy)
    assert isinstance(decision, FallBack)
    assert "45" in decision.reason
    last = decide(Category.RATE_LIMITED, retry_after=45.0, policy=policy, has_next=False)
    assert isinstance(last, Fail)
    assert (last.kind, last.wait) == ("quota_wait", 45.0)
    # exactly at the cap is still honoured
    assert decide(Category.RATE_LIMITED, retry_after=30.0, policy=policy) == Retry(
        30.0, "rate_limited"
    )


def test_deadline_exceeded_gets_one_smaller_retry_then_falls_back() -> None:
    first = decide(Category.DEADLINE_EXCEEDED)
    assert first == Retry(1.0, "deadline_exceeded", shrink=True)
    second = decide(Category.DEADLINE_EXCEEDED, failures=2, shrunk=True)
    assert second == FallBack("deadline_exceeded")
    timeout = decide(Category.TIMEOUT, shrunk=True)
    assert timeout == FallBack("timeout")


def test_deadline_exceeded_without_shrinking_falls_back_at_once() -> None:
    policy = POLICY.with_options(shrink_on_deadline=False)
    assert decide(Category.DEADLINE_EXCEEDED, policy=policy) == FallBack("deadline_exceeded")
    # on the last model it is retried like any transient failure
    last = decide(Category.DEADLINE_EXCEEDED, policy=policy, has_next=False)
    assert last == Retry(1.0, "deadline_exceeded")


def test_spent_budget_means_fallback_or_failure_not_retry() -> None:
    decision = decide(Category.SERVER_ERROR, budget_allows=False)
    assert isinstance(decision, FallBack)
    assert "budget" in decision.reason
    last = decide(Category.SERVER_ERROR, budget_allows=False, has_next=False)
    assert isinstance(last, Fail)
    assert "budget" in last.reason


def test_the_call_deadline_stops_a_wait_that_would_overrun_it() -> None:
    policy = POLICY
    ok = decide(Category.RATE_LIMITED, retry_after=10.0, now=100.0, deadline_at=111.0)
    assert ok == Retry(10.0, "rate_limited")
    late = decide(
        Category.RATE_LIMITED, retry_after=10.0, now=100.0, deadline_at=109.0, policy=policy
    )
    assert isinstance(late, FallBack)
    last = decide(
        Category.RATE_LIMITED, retry_after=10.0, now=100.0, deadline_at=109.0, has_next=False
    )
    assert isinstance(last, Fail)
    assert "deadline" in last.reason


def test_daily_quota_parked_until_pacific_midnight_across_dst_change() -> None:
    # 2026-03-08 is the spring-forward day in Los Angeles: the day after it starts at
    # 07:00 UTC, the day before at 08:00 UTC.
    clock = FakeClock(start=dt.datetime(2026, 3, 7, 23, 30, tzinfo=LA).timestamp())
    lot = ParkingLot()
    decision = decide(Category.DAILY_QUOTA_EXHAUSTED, retry_after=5.0, now_wall=clock.time())
    assert isinstance(decision, FallBack)
    assert decision.park_until is not None
    lot.park("p/gemini-2.5-flash", decision.park_until)
    midnight = dt.datetime(2026, 3, 8, 0, 0, tzinfo=LA)
    assert decision.park_until == midnight.timestamp()
    assert dt.datetime.fromtimestamp(decision.park_until, dt.UTC).hour == 8  # PST

    clock.advance(29 * 60 + 59)  # 23:59:59 PST
    assert lot.parked_until("p/gemini-2.5-flash", clock.time()) == midnight.timestamp()
    clock.advance(1)  # midnight
    assert lot.parked_until("p/gemini-2.5-flash", clock.time()) is None

    # Parked again the next evening: that day is 23 hours long, reset at 07:00 UTC.
    clock.set_time(dt.datetime(2026, 3, 8, 22, 0, tzinfo=LA).timestamp())
    again = decide(Category.DAILY_QUOTA_EXHAUSTED, now_wall=clock.time())
    assert isinstance(again, FallBack)
    assert again.park_until is not None
    assert again.park_until - midnight.timestamp() == 23 * 3600
    assert dt.datetime.fromtimestamp(again.park_until, dt.UTC).hour == 7  # PDT


def test_parking_lot_keeps_the_later_time_and_forgets_expired_entries() -> None:
    lot = ParkingLot()
    lot.park("m", 200.0)
    lot.park("m", 100.0)
    assert lot.parked_until("m", 150.0) == 200.0
    assert lot.parked_until("m", 200.0) is None
    assert lot.parked_until("other", 0.0) is None


def test_spent_budget_does_not_hold_back_a_quota_wait_the_server_asked_for() -> None:
    decision = decide(Category.RATE_LIMITED, retry_after=20.0, budget_allows=False)
    assert decision == Retry(20.0, "rate_limited")
