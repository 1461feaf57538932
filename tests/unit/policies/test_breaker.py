"""Circuit breaker: transitions, half-open probes, growing cooldowns, the store."""

from __future__ import annotations

import json
import random

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category
from gemini_guard.policies import (
    Breaker,
    BreakerPolicy,
    BreakerSnapshot,
    BreakerTransition,
    MemoryBreakerStore,
)
from tests.unit.policies._diagnoses import diag

FAIL = diag(Category.SERVER_ERROR)


def make(policy: BreakerPolicy | None = None) -> tuple[Breaker, FakeClock]:
    clock = FakeClock()
    breaker = Breaker(
        "default/gemini-2.5-pro",
        policy=policy or BreakerPolicy(failure_threshold=3, cooldown=30.0),
        store=MemoryBreakerStore(),
    )
    return breaker, clock


def fail_n(breaker: Breaker, clock: FakeClock, n: int) -> list[BreakerTransition]:
    moves = []
    for _ in range(n):
        admission, _ = breaker.admit(clock.time())
        assert admission.allowed
        move = breaker.record(clock.time(), FAIL, probe=admission.probe)
        if move is not None:
            moves.append(move)
    return moves


def test_opens_after_n_consecutive_failures() -> None:
    breaker, clock = make()
    assert fail_n(breaker, clock, 2) == []
    assert breaker.state(clock.time()) == "closed"
    moves = fail_n(breaker, clock, 1)
    assert [(m.old, m.new) for m in moves] == [("closed", "open")]
    assert moves[0].open_until == clock.time() + 30.0
    admission, _ = breaker.admit(clock.time())
    assert not admission.allowed
    assert admission.retry_at == clock.time() + 30.0


def test_a_success_resets_the_consecutive_count() -> None:
    breaker, clock = make()
    fail_n(breaker, clock, 2)
    breaker.record(clock.time(), None)
    fail_n(breaker, clock, 2)
    assert breaker.state(clock.time()) == "closed"


def test_quota_and_request_errors_do_not_trip_it() -> None:
    breaker, clock = make()
    for category in (Category.RATE_LIMITED, Category.BAD_REQUEST, Category.DAILY_QUOTA_EXHAUSTED):
        for _ in range(5):
            breaker.admit(clock.time())
            breaker.record(clock.time(), diag(category))
    assert breaker.state(clock.time()) == "closed"


def test_opens_on_failure_ratio_over_the_window() -> None:
    policy = BreakerPolicy(failure_threshold=100, failure_ratio=0.5, window=60, min_calls=10)
    breaker, clock = make(policy)
    moves: list[BreakerTransition | None] = []
    for i in range(10):  # alternate: never 2 failures in a row, but 50% fail
        clock.advance(1)
        moves.append(breaker.record(clock.time(), FAIL if i % 2 else None))
    opened = [m for m in moves if m is not None]
    assert [(m.old, m.new) for m in opened] == [("closed", "open")]
    assert "50%" in opened[0].reason


def test_ratio_forgets_outcomes_older_than_the_window() -> None:
    policy = BreakerPolicy(failure_threshold=100, failure_ratio=0.5, window=60, min_calls=10)
    breaker, clock = make(policy)
    for _ in range(5):
        breaker.record(clock.time(), FAIL)
    clock.advance(61)  # those failures leave the window
    for i in range(9):
        breaker.record(clock.time(), FAIL if i == 0 else None)
    assert breaker.state(clock.time()) == "closed"


def test_half_open_after_cooldown_lets_a_limited_number_of_probes_through() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=10.0, half_open_probes=2)
    breaker, clock = make(policy)
    fail_n(breaker, clock, 1)
    clock.advance(9.9)
    assert not breaker.admit(clock.time())[0].allowed
    clock.advance(0.1)
    first, move = breaker.admit(clock.time())
    assert (first.allowed, first.probe, first.state) == (True, True, "half_open")
    assert move is not None
    assert (move.old, move.new) == ("open", "half_open")
    second, _ = breaker.admit(clock.time())
    assert second.allowed
    assert second.probe
    third, _ = breaker.admit(clock.time())
    assert not third.allowed  # the probe limit


def test_a_successful_probe_closes_it() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=10.0)
    breaker, clock = make(policy)
    fail_n(breaker, clock, 1)
    clock.advance(10)
    probe, _ = breaker.admit(clock.time())
    move = breaker.record(clock.time(), None, probe=probe.probe)
    assert move is not None
    assert (move.old, move.new) == ("half_open", "closed")
    assert breaker.admit(clock.time())[0].allowed
    assert breaker.store.load(breaker.key) == BreakerSnapshot(
        outcomes=((clock.time() - 10, True), (clock.time(), False)),
        failures=(clock.time() - 10,),
    )


def test_failed_probes_reopen_with_a_doubling_cooldown_up_to_the_max() -> None:
    policy = BreakerPolicy(
        failure_threshold=1, cooldown=10.0, max_cooldown=35.0, storm_failures=100, storm_after=0
    )
    breaker, clock = make(policy)
    cooldowns = []
    for _ in range(4):
        moves = fail_n(breaker, clock, 1)
        opened = [m for m in moves if m.new == "open"]
        assert opened
        assert opened[-1].open_until is not None
        cooldowns.append(opened[-1].open_until - clock.time())
        clock.advance(cooldowns[-1])
    assert cooldowns == [10.0, 20.0, 35.0, 35.0]


def test_cooldown_starts_over_after_a_successful_close() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=10.0, storm_failures=100, storm_after=0)
    breaker, clock = make(policy)
    fail_n(breaker, clock, 1)
    clock.advance(10)
    fail_n(breaker, clock, 1)  # probe fails: 20 s
    clock.advance(20)
    probe, _ = breaker.admit(clock.time())
    breaker.record(clock.time(), None, probe=probe.probe)
    moves = fail_n(breaker, clock, 1)
    assert moves[-1].open_until == clock.time() + 10.0


def test_a_young_outage_is_probed_often_and_an_old_one_pauses_for_the_status_page() -> None:
    breaker, clock = make(BreakerPolicy())  # the defaults
    fail_n(breaker, clock, 8)  # the fast path opens it
    intervals = []
    while True:
        snap = breaker.store.load(breaker.key)
        assert snap is not None
        interval = snap.open_until - clock.time()
        intervals.append(interval)
        if interval > 5.0:
            break
        clock.advance(interval)
        fail_n(breaker, clock, 1)  # the probe fails
    # every 5 s for the first two minutes (a one-minute blip is seen within 5 s of
    # its end), then, with far more than 10 failures in 5 minutes, a 10-minute pause
    assert intervals[:-1] == [5.0] * 24
    assert intervals[-1] == 600.0
    snap = breaker.store.load(breaker.key)
    assert snap is not None
    assert snap.down_since == clock.time() - 120.0


def test_a_blip_recovers_at_the_first_probe_after_it_ends() -> None:
    breaker, clock = make(BreakerPolicy())
    down_until = clock.time() + 60.0
    fail_n(breaker, clock, 8)
    served_at = None
    while served_at is None:
        clock.advance(1.0)
        admission, _ = breaker.admit(clock.time())
        if not admission.allowed:
            continue
        failed = clock.time() < down_until
        breaker.record(clock.time(), FAIL if failed else None, probe=admission.probe)
        if not failed:
            served_at = clock.time()
    assert served_at - down_until <= 5.0
    assert breaker.state(clock.time()) == "closed"
    snap = breaker.store.load(breaker.key)
    assert snap is not None
    assert (snap.down_since, snap.opens) == (0.0, 0)


def _traffic(breaker_policy: BreakerPolicy, error_rate: float, n: int, seed: int) -> list[str]:
    """`n` attempts half a second apart on one model failing at `error_rate`
    (a seeded draw per attempt); why the closed breaker opened, each time it did."""
    breaker, clock = make(breaker_policy)
    rng = random.Random(seed)
    opened = []
    for _ in range(n):
        clock.advance(0.5)
        admission, _ = breaker.admit(clock.time())
        if not admission.allowed:
            continue
        failed = rng.random() < error_rate
        move = breaker.record(clock.time(), FAIL if failed else None, probe=admission.probe)
        if move is not None and (move.old, move.new) == ("closed", "open"):
            opened.append(move.reason)
    return opened


def test_a_35_percent_error_rate_does_not_open_the_default_breaker() -> None:
    # The ratio rule (80% of at least 20 calls in 60 s) never fires at 35%...
    ratio_only = BreakerPolicy(failure_threshold=10_000)
    assert [r for s in range(20) for r in _traffic(ratio_only, 0.35, 1_000, s)] == []
    # ...and the fast path (8 in a row) only by rare chance: about 0.65 * 0.35**8,
    # 1.5e-4 per attempt, so a handful of opens in 20,000 attempts at most.
    opened = [r for s in range(20) for r in _traffic(BreakerPolicy(), 0.35, 1_000, s)]
    assert len(opened) <= 10
    assert all("8 consecutive" in r for r in opened)


def test_a_model_failing_everything_opens_the_default_breaker_within_three_calls() -> None:
    breaker, clock = make(BreakerPolicy())
    moves = fail_n(breaker, clock, 7)
    assert moves == []
    moves = fail_n(breaker, clock, 1)  # the 8th failure: three calls' worth at 3 tries each
    assert [(m.old, m.new) for m in moves] == [("closed", "open")]
    assert not breaker.admit(clock.time())[0].allowed


def test_a_model_failing_most_requests_opens_by_ratio_without_a_long_run() -> None:
    breaker, clock = make(BreakerPolicy())
    reasons = []
    for i in range(40):  # 7 failures then a success, over and over: 87.5%
        clock.advance(1.0)
        move = breaker.record(clock.time(), None if i % 8 == 7 else FAIL)
        if move is not None:
            reasons.append(move.reason)
    assert len(reasons) == 1
    assert "of 20 calls failed" in reasons[0]  # opened as soon as 20 calls were seen


def test_a_lost_probe_frees_its_slot_after_the_lease() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=10.0, probe_lease=60.0)
    breaker, clock = make(policy)
    fail_n(breaker, clock, 1)
    clock.advance(10)
    assert breaker.admit(clock.time())[0].allowed  # taken, never reported
    assert not breaker.admit(clock.time())[0].allowed
    clock.advance(60)
    assert breaker.admit(clock.time())[0].allowed


def test_peek_takes_no_probe_slot() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown=10.0)
    breaker, clock = make(policy)
    fail_n(breaker, clock, 1)
    assert not breaker.peek(clock.time()).allowed
    clock.advance(10)
    assert breaker.peek(clock.time()).allowed
    assert breaker.peek(clock.time()).allowed
    assert breaker.admit(clock.time())[0].allowed


def test_snapshot_round_trips_through_json_for_persistent_stores() -> None:
    breaker, clock = make()
    fail_n(breaker, clock, 3)
    snap = breaker.store.load(breaker.key)
    assert snap is not None
    assert snap.state == "open"
    assert BreakerSnapshot.from_dict(json.loads(json.dumps(snap.to_dict()))) == snap


def test_breakers_of_different_keys_are_independent() -> None:
    store = MemoryBreakerStore()
    policy = BreakerPolicy(failure_threshold=1)
    pro = Breaker("p/pro", policy=policy, store=store)
    flash = Breaker("p/flash", policy=policy, store=store)
    pro.record(0.0, FAIL)
    assert pro.state(0.0) == "open"
    assert flash.state(0.0) == "closed"


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_ratio"):
        BreakerPolicy(failure_ratio=0)
    with pytest.raises(ValueError, match="half_open_probes"):
        BreakerPolicy(half_open_probes=0)
    with pytest.raises(ValueError, match="max_cooldown"):
        BreakerPolicy(cooldown=100, max_cooldown=10)
    with pytest.raises(ValueError, match="unknown breaker state"):
        BreakerSnapshot.from_dict({**BreakerSnapshot().to_dict(), "state": "ajar"})


def test_a_probe_given_back_unsent_frees_its_slot_at_once() -> None:
    breaker, clock = make(BreakerPolicy(failure_threshold=1, cooldown=30.0))
    fail_n(breaker, clock, 1)
    clock.advance(31)
    first, _ = breaker.admit(clock.time())
    assert first.probe
    assert not breaker.admit(clock.time())[0].allowed  # the one probe slot is taken
    breaker.release_probe()  # e.g. the model turned out parked before sending
    again, _ = breaker.admit(clock.time())
    assert again.allowed
    assert again.probe
    assert breaker.state(clock.time()) == "half_open"  # released, not recorded


def test_a_success_keeps_the_window_of_outcomes_in_order_and_bounded() -> None:
    breaker, clock = make(BreakerPolicy(failure_threshold=3, window=60.0, min_calls=10))
    for _ in range(100):
        breaker.record(clock.time(), None)
        clock.advance(1.0)
    snap = breaker.store.load(breaker.key)
    assert snap is not None
    times = [t for t, _ in snap.outcomes]
    assert times == sorted(times)
    assert len(times) == 60  # only the last minute: older outcomes left the window
    assert snap.consecutive_failures == 0
