"""The call path on a FakeClock: every decision, carried out by the sync and async drivers."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from google.genai import types

from gemini_guard.call import (
    AttemptPlan,
    Confirm,
    Outcome,
    Reserve,
    Send,
    Settle,
    Steps,
    Wait,
    run_sync,
)
from gemini_guard.diagnosis import Category
from gemini_guard.errors import (
    AttemptsExhausted,
    CircuitOpen,
    DailyQuotaExhausted,
    FallbackExhausted,
    QuotaWait,
    RequestRejected,
)
from gemini_guard.pacific import next_reset
from gemini_guard.policies import BreakerPolicy, RetryBudget, RetryPolicy
from gemini_guard.telemetry import (
    AttemptFailed,
    BreakerStateChanged,
    CallFailedEvent,
    CallSucceeded,
    FallbackTaken,
    ModelSkipped,
    QuotaWaited,
    RetryScheduled,
)
from tests.unit.guard._script import (
    ConfirmingGate,
    RecordingGate,
    Script,
    bad_request,
    bare_429,
    deadline,
    internal,
    not_found,
    ok,
    overloaded,
    quota,
    rig,
)
from tests.unit.policies._diagnoses import diag

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
LA = ZoneInfo("America/Los_Angeles")


def test_success_first_time_sends_once_and_settles_with_server_tokens() -> None:
    r = rig()
    response, info = r.run(Script({PRO: [ok(PRO, prompt_tokens=42)]}), [PRO, FLASH])
    assert response.model_version == PRO
    assert (info.model, info.attempt_count) == (PRO, 1)
    assert r.gate.settled == [(PRO, True, 42, None)]
    assert r.kinds() == ["attempt_started", "call_succeeded"]
    assert r.clock.sleeps == []


def test_transient_error_backs_off_on_the_clock_then_succeeds() -> None:
    r = rig()
    script = Script({FLASH: [internal(), internal(), ok(FLASH)]})
    _, info = r.run(script, [FLASH])
    assert script.sent_at == [0.0, 1.0, 3.0]  # backoff 1 s, then 2 s
    assert [a.category for a in info.attempts] == [
        Category.SERVER_ERROR,
        Category.SERVER_ERROR,
        None,
    ]
    assert [a.waited for a in info.attempts] == [0.0, 1.0, 2.0]
    retries = [e for e in r.events if isinstance(e, RetryScheduled)]
    assert [(e.reason, e.delay, e.http_status, e.grpc_status) for e in retries] == [
        ("server_error", 1.0, 500, "INTERNAL"),
        ("server_error", 2.0, 500, "INTERNAL"),
    ]
    assert retries[0].message == "An internal error."


def test_rate_limit_waits_the_server_delay() -> None:
    r = rig()
    script = Script({FLASH: [quota(delay="37s"), ok(FLASH)]})
    r.run(script, [FLASH])
    assert script.sent_at == [0.0, 37.0]
    # the 429 reached the quota gate so the limiter can learn from it
    assert r.gate.settled[0][3] is not None
    assert r.gate.settled[0][3].category is Category.RATE_LIMITED


def test_one_503_is_retried_on_the_requested_model_which_then_serves_the_call() -> None:
    r = rig()
    script = Script({PRO: [overloaded(), ok(PRO)]})
    response, info = r.run(script, [PRO, FLASH])
    assert response.model_version == PRO
    assert script.models == [PRO, PRO]
    assert r.clock.sleeps == [1.0]
    assert (info.model, info.requested, info.served_by_requested) == (PRO, PRO, True)
    done = next(e for e in r.events if isinstance(e, CallSucceeded))
    assert (done.requested, done.served_by_requested) == (PRO, True)


def test_a_failing_model_is_retried_then_the_call_falls_back_after_fallback_after() -> None:
    r = rig()
    script = Script({PRO: [overloaded(), internal(), overloaded()]})
    response, info = r.run(script, [PRO, FLASH])
    assert response.model_version == FLASH
    # retry, retry, then the fallback: the order the guide gives
    assert script.models == [PRO, PRO, PRO, FLASH]
    assert r.clock.sleeps == [1.0, 2.0]
    assert r.kinds() == [
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_failed",
        "fallback_taken",
        "attempt_started",
        "call_succeeded",
    ]
    fallback = next(e for e in r.events if isinstance(e, FallbackTaken))
    assert (fallback.model, fallback.to_model, fallback.http_status) == (PRO, FLASH, 503)
    assert (info.model, info.requested, info.served_by_requested) == (FLASH, PRO, False)
    done = next(e for e in r.events if isinstance(e, CallSucceeded))
    assert (done.model, done.requested, done.served_by_requested) == (FLASH, PRO, False)


def test_a_bare_429_is_retried_with_backoff_on_the_same_model_then_falls_back() -> None:
    r = rig(pacing=False)
    script = Script({PRO: [bare_429(), bare_429(), bare_429()]})
    response, info = r.run(script, [PRO, FLASH])
    assert response.model_version == FLASH
    assert script.models == [PRO, PRO, PRO, FLASH]
    assert r.clock.sleeps == [1.0, 2.0]  # the backoff schedule, not a quota wait
    retries = [e for e in r.events if isinstance(e, RetryScheduled)]
    assert all("transient capacity" in e.reason for e in retries)
    assert [a.http_status for a in info.attempts] == [429, 429, 429, 200]


def test_each_call_starts_from_its_own_model_after_another_fell_back() -> None:
    r = rig()
    r.run(Script({PRO: [overloaded()] * 3}), [PRO, FLASH])
    script = Script({})
    _, info = r.run(script, [PRO, FLASH])
    assert script.models == [PRO]  # one bad call does not move the next one
    assert info.served_by_requested


def test_a_breaker_opened_by_another_call_sends_a_waiting_retry_straight_on() -> None:
    r = rig(breaker=BreakerPolicy(failure_threshold=2, cooldown=60.0))
    other = f"default/{PRO}"

    def send(plan: AttemptPlan) -> types.GenerateContentResponse:
        if plan.model == PRO:
            # While this attempt is on the wire, other calls' failures open pro's breaker.
            r.engine.breaker(PRO).record(r.clock.time(), diag(Category.OVERLOADED))
            r.engine.breaker(PRO).record(r.clock.time(), diag(Category.OVERLOADED))
            raise overloaded()
        return ok(plan.model)

    steps: Steps[types.GenerateContentResponse] = r.engine.steps(
        (PRO, FLASH), tokens=5, input_tokens_of=_five
    )
    response, info = run_sync(steps, clock=r.clock, quota=r.gate, send=send)
    assert response.model_version == FLASH
    assert [a.model for a in info.attempts] == [PRO, FLASH]
    assert r.clock.sleeps == []  # no backoff waited out only to be refused
    assert r.engine.breaker_store.load(other) is not None
    fallback = next(e for e in r.events if isinstance(e, FallbackTaken))
    assert "breaker is open" in fallback.reason


def test_three_consecutive_failures_fall_back() -> None:
    r = rig()
    script = Script({PRO: [internal(), internal(), internal()]})
    response, _ = r.run(script, [PRO, FLASH])
    assert script.models == [PRO, PRO, PRO, FLASH]
    assert response.model_version == FLASH


def test_request_error_fails_at_once_without_fallback() -> None:
    r = rig()
    script = Script({PRO: [bad_request()]})
    with pytest.raises(RequestRejected) as caught:
        r.run(script, [PRO, FLASH])
    assert script.models == [PRO]
    assert caught.value.diagnosis.category is Category.BAD_REQUEST
    assert [a.model for a in caught.value.attempts] == [PRO]
    failed = [e for e in r.events if isinstance(e, CallFailedEvent)]
    assert failed[0].error == "RequestRejected"
    assert "candidate_count" in failed[0].message


def test_not_found_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    r = rig()
    script = Script({"gemini-1.0-pro": [not_found("gemini-1.0-pro")]})
    response, _ = r.run(script, ["gemini-1.0-pro", FLASH])
    assert response.model_version == FLASH
    fallback = next(e for e in r.events if isinstance(e, FallbackTaken))
    assert fallback.warning is not None
    assert "deprecated" in fallback.warning
    assert any("deprecated" in rec.getMessage() for rec in caplog.records)


def test_last_model_exhausts_retries_then_raises_attempts_exhausted() -> None:
    r = rig(budget=RetryBudget(max_tokens=100), breaker=BreakerPolicy(failure_threshold=50))
    script = Script({FLASH: [internal()] * 10})
    with pytest.raises(AttemptsExhausted) as caught:
        r.run(script, [FLASH])
    assert len(script.plans) == 6  # 1 + max_retries
    assert r.clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert len(caught.value.attempts) == 6


def test_every_model_failing_raises_fallback_exhausted() -> None:
    r = rig(budget=RetryBudget(max_tokens=100), breaker=BreakerPolicy(failure_threshold=50))
    script = Script({PRO: [overloaded()] * 3, FLASH: [internal()] * 10})
    with pytest.raises(FallbackExhausted) as caught:
        r.run(script, [PRO, FLASH])
    assert script.models == [PRO] * 3 + [FLASH] * 6
    assert caught.value.diagnosis.category is Category.SERVER_ERROR


def test_daily_quota_parks_the_model_for_later_calls_until_pacific_midnight() -> None:
    r = rig()
    r.clock.set_time(dt.datetime(2026, 3, 7, 22, 0, tzinfo=LA).timestamp())
    script = Script({FLASH: [quota(per="Day", delay="20s")]})
    response, _ = r.run(script, [FLASH, LITE])
    assert response.model_version == LITE
    # The next call does not even try flash...
    script2 = Script({})
    r.run(script2, [FLASH, LITE])
    assert script2.models == [LITE]
    skipped = [e for e in r.events if isinstance(e, ModelSkipped)]
    assert skipped[-1].reason == "parked"
    midnight = dt.datetime(2026, 3, 8, 0, 0, tzinfo=LA).timestamp()
    assert skipped[-1].until == midnight
    # ...until the Pacific midnight (the spring-forward day starts at 08:00 UTC).
    r.clock.set_time(midnight - 1)
    script3 = Script({})
    r.run(script3, [FLASH, LITE])
    assert script3.models == [LITE]
    r.clock.set_time(midnight)
    script4 = Script({})
    r.run(script4, [FLASH, LITE])
    assert script4.models == [FLASH]


def test_daily_quota_on_the_only_model_raises_with_reset_time() -> None:
    r = rig()
    with pytest.raises(DailyQuotaExhausted) as caught:
        r.run(Script({FLASH: [quota(per="Day", delay="20s")]}), [FLASH])
    assert caught.value.reset_at == next_reset(r.clock.time())
    assert r.clock.sleeps == []  # the 20 s retryDelay was not obeyed: it is useless
    # A second call sends nothing at all.
    script = Script({})
    with pytest.raises(DailyQuotaExhausted):
        r.run(script, [FLASH])
    assert script.plans == []


def test_server_delay_over_the_cap_fails_with_quota_wait() -> None:
    r = rig(retry=RetryPolicy(max_retry_after=30.0, jitter="none"))
    with pytest.raises(QuotaWait) as caught:
        r.run(Script({FLASH: [quota(delay="45s")]}), [FLASH])
    assert caught.value.wait == 45.0
    assert r.clock.sleeps == []


def test_open_breaker_skips_the_model_and_all_open_raises_circuit_open() -> None:
    r = rig(breaker=BreakerPolicy(failure_threshold=2, cooldown=30.0))
    policy_fail = Script({FLASH: [internal()] * 6})
    with pytest.raises(AttemptsExhausted):
        r.run(policy_fail, [FLASH])
    moves = [e for e in r.events if isinstance(e, BreakerStateChanged)]
    assert [(m.old, m.new) for m in moves] == [("closed", "open")]
    # The breaker opened after the second failure: the retries stopped there.
    assert len(policy_fail.plans) == 2
    r.events.clear()
    nothing = Script({})
    with pytest.raises(CircuitOpen) as caught:
        r.run(nothing, [FLASH])
    assert nothing.plans == []
    assert caught.value.diagnosis.retry_after is not None
    assert r.kinds() == ["model_skipped", "call_failed"]


def test_half_open_probe_after_cooldown_closes_the_breaker_on_success() -> None:
    r = rig(breaker=BreakerPolicy(failure_threshold=1, cooldown=30.0))
    with pytest.raises(AttemptsExhausted):
        r.run(Script({FLASH: [internal()]}), [FLASH])
    r.clock.advance(30)
    r.events.clear()
    r.run(Script({}), [FLASH])
    moves = [(e.old, e.new) for e in r.events if isinstance(e, BreakerStateChanged)]
    assert moves == [("open", "half_open"), ("half_open", "closed")]


def test_open_breaker_on_first_model_sends_straight_to_the_next() -> None:
    r = rig(breaker=BreakerPolicy(failure_threshold=1, cooldown=60.0))
    r.run(Script({PRO: [internal()]}), [PRO, FLASH])
    script = Script({})
    r.run(script, [PRO, FLASH])
    assert script.models == [FLASH]


def test_spent_budget_stops_retries() -> None:
    budget = RetryBudget(max_tokens=2, token_ratio=1)
    r = rig(budget=budget)
    script = Script({FLASH: [internal()] * 10})
    with pytest.raises(AttemptsExhausted) as caught:
        r.run(script, [FLASH])
    # two retries spend the two tokens; the third failure is not retried
    assert len(script.plans) == 3
    assert "budget" in str(caught.value)
    assert budget.tokens(f"default/{FLASH}") == 0.0


def test_the_budget_charges_retries_only_not_first_attempts_or_fallback_hops() -> None:
    budget = RetryBudget(max_tokens=10, token_ratio=1)
    r = rig(budget=budget)
    r.run(Script({PRO: [overloaded()] * 3}), [PRO, FLASH])  # 2 retries, 1 hop
    assert budget.tokens(f"default/{PRO}") == 8.0
    assert budget.tokens(f"default/{FLASH}") == 10.0  # its first attempt is free
    r.run(Script({}), [PRO, FLASH])  # a success on pro pays one back
    assert budget.tokens(f"default/{PRO}") == 9.0


@pytest.mark.parametrize(
    ("error_rate", "lost_to_budget"), [(0.10, 0), (0.35, 0), (0.50, 0), (1.00, None)]
)
def test_the_default_budget_on_a_fake_clock_at_a_given_error_rate(
    error_rate: float, lost_to_budget: int | None
) -> None:
    # 300 calls, one after another, on a chain of pro -> flash with the default
    # policies, pro failing `error_rate` of its requests at random (seeded); flash
    # always answers. The budget must never turn a retry into a fallback at 10, 35
    # or 50%, and must stop retrying pro when it fails everything.
    r = rig(
        retry=RetryPolicy(deadline=None),
        breaker=BreakerPolicy(failure_threshold=10_000, min_calls=10_000),
    )
    rng = random.Random(11)
    sent = {PRO: 0, FLASH: 0}

    def send(plan: AttemptPlan) -> types.GenerateContentResponse:
        sent[plan.model] += 1
        if plan.model == PRO and rng.random() < error_rate:
            raise overloaded()
        return ok(plan.model)

    served_by_pro = 0
    for _ in range(300):
        steps: Steps[types.GenerateContentResponse] = r.engine.steps(
            (PRO, FLASH), tokens=5, input_tokens_of=_five
        )
        _, info = run_sync(steps, clock=r.clock, quota=r.gate, send=send)
        served_by_pro += info.served_by_requested
        r.clock.advance(1.0)
    budget_fallbacks = [
        e for e in r.events if isinstance(e, FallbackTaken) and "budget" in e.reason
    ]
    if lost_to_budget is not None:
        assert budget_fallbacks == []
        # what is left is the chance of three failures in a row: p**3
        assert served_by_pro >= 300 * (1 - error_rate**3) - 10
    else:
        # 20 tokens: 20 retries on pro, then one request per call (the breaker is
        # held shut here to show the budget alone stopping the storm)
        assert served_by_pro == 0
        assert sent[PRO] == 300 + 20
        assert len(budget_fallbacks) == 300 - 10


def test_deadline_exceeded_retries_once_shrunk_then_falls_back() -> None:
    r = rig()
    script = Script({PRO: [deadline(), deadline()]})
    response, _ = r.run(script, [PRO, FLASH])
    assert [(p.model, p.shrink) for p in script.plans] == [
        (PRO, False),
        (PRO, True),
        (FLASH, False),
    ]
    assert response.model_version == FLASH


def test_breaker_opening_mid_call_stops_the_retries() -> None:
    r = rig(budget=RetryBudget(max_tokens=100), breaker=BreakerPolicy(failure_threshold=3))
    script = Script({FLASH: [internal()] * 10})
    with pytest.raises(AttemptsExhausted, match="breaker is open") as caught:
        r.run(script, [FLASH])
    assert len(script.plans) == 3
    assert [a.sent for a in caught.value.attempts] == [True, True, True]
    assert r.clock.sleeps == [1.0, 2.0]  # no third backoff before finding it open


def test_the_call_deadline_bounds_waits_and_attempt_timeouts() -> None:
    r = rig(retry=RetryPolicy(jitter="none", deadline=10.0, attempt_timeout=60.0))
    script = Script({FLASH: [internal()] * 10})
    with pytest.raises(AttemptsExhausted) as caught:
        r.run(script, [FLASH])
    # waits 1, 2, 4 fit in 10 s (t=7); the next (8 s) would end past the deadline.
    assert r.clock.sleeps == [1.0, 2.0, 4.0]
    assert "deadline" in str(caught.value)
    # each attempt's timeout is what is left of the call's deadline
    assert [p.timeout for p in script.plans] == [10.0, 9.0, 7.0, 3.0]


def test_quota_gate_wait_is_slept_and_reported() -> None:
    r = rig(gate=RecordingGate(wait=12.5))
    script = Script({})
    _, info = r.run(script, [FLASH])
    assert r.clock.sleeps == [12.5]
    assert script.sent_at == [12.5]
    waited = [e for e in r.events if isinstance(e, QuotaWaited)]
    assert [w.wait for w in waited] == [12.5]
    assert info.attempts[0].waited == 12.5


def test_quota_gate_daily_exhaustion_parks_and_falls_back_without_sending() -> None:
    from tests.unit.policies._diagnoses import diag

    gate = RecordingGate()
    reset = next_reset(rig().clock.time())
    gate.raise_on[PRO] = DailyQuotaExhausted(
        "spent", diagnosis=diag(Category.DAILY_QUOTA_EXHAUSTED), reset_at=reset
    )
    r = rig(gate=gate)
    script = Script({})
    response, info = r.run(script, [PRO, FLASH])
    assert script.models == [FLASH]
    assert response.model_version == FLASH
    assert [(a.model, a.sent) for a in info.attempts] == [(PRO, False), (FLASH, True)]


def test_attempt_failed_events_carry_what_the_guide_says_to_record() -> None:
    r = rig()
    started = r.clock.time()
    r.run(Script({PRO: [overloaded()] * 3}), [PRO, FLASH])
    failed = next(e for e in r.events if isinstance(e, AttemptFailed))
    assert failed.to_dict() | {"timestamp": 0} == {
        "event": "attempt_failed",
        "timestamp": 0,
        "call_id": failed.call_id,
        "model": PRO,
        "http_status": 503,
        "grpc_status": "UNAVAILABLE",
        "category": "overloaded",
        "message": "The model is overloaded.",
        "attempt": 1,
        "elapsed": 0.0,
    }
    assert failed.timestamp == started
    done = next(e for e in r.events if isinstance(e, CallSucceeded))
    assert (done.model, done.attempts) == (FLASH, 4)


async def test_async_driver_makes_the_same_decisions() -> None:
    r = rig()
    script = Script({PRO: [overloaded()] * 3, FLASH: [internal(), ok(FLASH)]})
    response, info = await r.arun(script, [PRO, FLASH])
    assert response.model_version == FLASH
    assert script.models == [PRO, PRO, PRO, FLASH, FLASH]
    assert r.clock.sleeps == [1.0, 2.0, 1.0]
    assert info.attempt_count == 5
    assert (info.requested, info.served_by_requested) == (PRO, False)


async def test_async_driver_raises_the_same_errors() -> None:
    r = rig()
    with pytest.raises(RequestRejected):
        await r.arun(Script({PRO: [bad_request()]}), [PRO, FLASH])


def test_a_chain_needs_a_model() -> None:
    r = rig()
    with pytest.raises(ValueError, match="at least one model"):
        r.run(Script({}), [])


def test_a_confirmed_permit_is_sent_after_the_extra_waits_the_gate_asks_for() -> None:
    gate = ConfirmingGate(wait=6.0, answers=[2.5, 0.5])
    r = rig(gate=gate)
    script = Script({})
    _, info = r.run(script, [FLASH])
    # the permit's wait, then each re-plan, then one request
    assert r.clock.sleeps == [6.0, 2.5, 0.5]
    assert gate.confirmed == [FLASH, FLASH, FLASH]
    assert script.sent_at == [9.0]
    assert [e.wait for e in r.events if isinstance(e, QuotaWaited)] == [6.0, 2.5, 0.5]
    assert info.attempts[0].waited == 9.0
    assert gate.settled == [(FLASH, True, 7, None)]


async def test_the_async_driver_confirms_with_aconfirm() -> None:
    gate = ConfirmingGate(answers=[4.0])
    r = rig(gate=gate)
    await r.arun(Script({}), [FLASH])
    assert r.clock.sleeps == [4.0]
    assert gate.confirmed == [FLASH, FLASH]


def test_a_re_plan_past_the_deadline_releases_the_slot_and_sends_nothing() -> None:
    gate = ConfirmingGate(answers=[50.0])
    r = rig(gate=gate, retry=RetryPolicy(deadline=30.0))
    script = Script({})
    with pytest.raises(QuotaWait) as caught:
        r.run(script, [FLASH])
    assert script.plans == []
    assert gate.settled == [(FLASH, False, None, None)]
    assert caught.value.wait == 50.0


def test_without_a_gate_nothing_is_reserved_or_settled() -> None:
    r = rig(pacing=False)
    steps: Steps[types.GenerateContentResponse] = r.engine.steps(
        (FLASH,), tokens=5, input_tokens_of=_five
    )
    assert isinstance(next(steps), Send)  # no Reserve, no Confirm first
    with pytest.raises(StopIteration) as done:  # ...and no Settle after
        steps.send(Outcome(value=ok(FLASH)))
    assert done.value.value[1].model == FLASH
    assert r.gate.reserved == []


def _five(response: object) -> int:
    return 5


def _until_wait(steps: Steps[types.GenerateContentResponse]) -> Wait:
    """Drive a call through a 429 (quota naming 10 RPM, retry in 37 s) to its wait."""
    effect = steps.send(None)
    while not isinstance(effect, Wait):
        if isinstance(effect, Send):
            effect = steps.send(Outcome(error=quota(delay="37s")))
        elif isinstance(effect, Reserve):
            permit = RecordingGate().reserve(project="p", model=FLASH, tokens=0)
            effect = steps.send(Outcome(value=permit))
        elif isinstance(effect, Confirm):
            effect = steps.send(Outcome(value=0.0))
        else:
            assert isinstance(effect, Settle)
            effect = steps.send(None)
    return effect


def test_without_pacing_a_fresh_call_joins_the_line_of_429_waiters() -> None:
    r = rig(pacing=False)
    first: Steps[types.GenerateContentResponse] = r.engine.steps(
        (FLASH,), tokens=5, input_tokens_of=_five
    )
    assert _until_wait(first).seconds == 37.0
    # A call arriving while the first waits on the model's quota lines up behind it,
    # 60/10 = 6 s later, instead of drawing a 429 of its own.
    second: Steps[types.GenerateContentResponse] = r.engine.steps(
        (FLASH,), tokens=5, input_tokens_of=_five
    )
    assert second.send(None) == Wait(43.0)


def test_with_pacing_the_gate_keeps_the_line_and_retry_slots_step_aside() -> None:
    r = rig()
    first: Steps[types.GenerateContentResponse] = r.engine.steps(
        (FLASH,), tokens=5, input_tokens_of=_five
    )
    assert _until_wait(first).seconds == 37.0
    # The gate's FIFO booking is the line: the fresh call goes straight to it, and
    # no second spacing is added on top of the one the gate will give.
    second: Steps[types.GenerateContentResponse] = r.engine.steps(
        (FLASH,), tokens=5, input_tokens_of=_five
    )
    assert isinstance(second.send(None), Reserve)


def test_a_model_parked_while_a_call_waited_on_it_is_not_sent_to_again() -> None:
    # Call A fails on flash and waits to retry; meanwhile another call learns that
    # flash's day is spent and parks it. A must not send into it: it falls back.
    r = rig()
    script = Script({FLASH: [internal()]})
    until = next_reset(r.clock.time())

    def send(plan: AttemptPlan) -> types.GenerateContentResponse:
        if not script.plans:  # while the first attempt is on the wire
            r.engine.parking.park(f"default/{FLASH}", until)  # "another call" did it
        return script.send(plan)

    steps: Steps[types.GenerateContentResponse] = r.engine.steps(
        (FLASH, LITE), tokens=5, input_tokens_of=_five
    )
    response, info = run_sync(steps, clock=r.clock, quota=r.gate, send=send)
    assert script.models == [FLASH, LITE]
    assert response.model_version == LITE
    assert [(a.model, a.sent) for a in info.attempts] == [
        (FLASH, True),
        (FLASH, False),
        (LITE, True),
    ]
    # the slot booked for the retry on flash was given back unsent
    assert (FLASH, False, None, None) in r.gate.settled
    skipped = [e for e in r.events if isinstance(e, ModelSkipped)]
    assert [(e.model, e.reason, e.until) for e in skipped] == [(FLASH, "parked", until)]
