"""The project pool: most headroom first, on to the next project when one is spent."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from gemini_guard.call import NoQuota, QuotaGate
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, Diagnosis
from gemini_guard.errors import ConfigError, DailyQuotaExhausted, QuotaWait
from gemini_guard.quota.pool import ANY_PROJECT, Project, ProjectPool

MODEL = "gemini-2.5-flash"
UTC = dt.UTC
KEY_A1, KEY_A2, KEY_B = "AIzaSyA-first-key-0001", "AIzaSyA-second-key-0002", "AIzaSyB-key-0003"


def pool(clock: FakeClock, **options: object) -> ProjectPool:
    options.setdefault("latency_allowance", 0.0)
    return ProjectPool(
        [
            Project("proj-a", keys=(KEY_A1, KEY_A2), tier="free"),
            {"name": "proj-b", "keys": [KEY_B], "tier": "free"},
        ],
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def test_the_pool_is_a_quota_gate() -> None:
    gates: list[QuotaGate] = [pool(FakeClock()), NoQuota()]
    assert all(hasattr(gate, "confirm") for gate in gates)


def test_requests_go_where_there_is_most_room_and_queue_only_when_all_are_full() -> None:
    clock = FakeClock()
    gate = pool(clock, limits={MODEL: {"rpm": 2}})
    permits = [gate.reserve(project=ANY_PROJECT, model=MODEL, tokens=0) for _ in range(4)]
    assert [p.project for p in permits] == ["proj-a", "proj-b", "proj-a", "proj-b"]
    assert [p.wait for p in permits] == [0.0] * 4
    for permit in permits:
        gate.settle(permit, sent=True)
    fifth = gate.reserve(project=None, model=MODEL, tokens=0)
    assert fifth.wait == pytest.approx(60.0)


def test_a_bigger_tier_gets_the_bigger_share() -> None:
    clock = FakeClock()
    gate = ProjectPool(
        [
            Project("small", keys=("k-small-000001",), tier="free"),
            Project("big", keys=("k-big-0001",), tier="tier1"),
        ],
        clock=clock,
        latency_allowance=0.0,
    )
    chosen: Counter[str] = Counter()
    for _ in range(60):
        permit = gate.reserve(project="*", model=MODEL, tokens=10)
        assert permit.wait == 0.0
        chosen[permit.project] += 1
        gate.settle(permit, sent=True)
    # free: 10 RPM; tier 1: 2000 RPM. Once the free minute is full, all go to "big".
    assert chosen["small"] <= 10
    assert chosen["big"] >= 50


def test_each_project_is_paced_by_its_own_limits() -> None:
    # proj-b bought provisioned throughput for the model: 5 a minute where the pool's
    # override says 2; proj-a keeps the pool's 2, and the tier table's other figures.
    clock = FakeClock()
    gate = ProjectPool(
        [
            Project("proj-a", keys=(KEY_A1,), tier="free"),
            {"name": "proj-b", "keys": [KEY_B], "tier": "free", "limits": {MODEL: {"rpm": 5}}},
        ],
        clock=clock,
        limits={MODEL: {"rpm": 2}},
        latency_allowance=0.0,
    )
    assert gate.limiter.budget("proj-a", MODEL).requests == 2
    assert gate.limiter.budget("proj-b", MODEL).requests == 5
    free_tpm = gate.limiter.budget("proj-a", MODEL).tokens
    assert free_tpm is not None
    assert gate.limiter.budget("proj-b", MODEL).tokens == free_tpm  # only rpm replaced
    assert gate.limiter.budget("proj-b", "gemini-2.5-pro").requests == 5  # the free table
    chosen: Counter[str] = Counter()
    for _ in range(7):
        permit = gate.reserve(project=ANY_PROJECT, model=MODEL, tokens=0)
        assert permit.wait == 0.0
        chosen[permit.project] += 1
        gate.settle(permit, sent=True)
    assert chosen == {"proj-a": 2, "proj-b": 5}
    # Both minutes are full now; each named project waits for its own window.
    assert gate.reserve(project="proj-a", model=MODEL, tokens=0).wait == pytest.approx(60.0)
    clock.advance(30)
    assert gate.reserve(project="proj-b", model=MODEL, tokens=0).wait == pytest.approx(30.0)
    clock.advance(31)
    permits = [gate.reserve(project="proj-b", model=MODEL, tokens=0) for _ in range(4)]
    assert [p.wait for p in permits] == [0.0] * 4  # a fresh minute of proj-b's own 5


def test_a_spent_day_moves_on_to_the_next_project_until_midnight() -> None:
    clock = FakeClock(start=dt.datetime(2026, 1, 10, 20, 0, tzinfo=UTC).timestamp())
    gate = pool(clock, limits={MODEL: {"rpd": 2, "rpm": 100}})
    projects = []
    for _ in range(4):
        permit = gate.reserve(project="*", model=MODEL, tokens=0)
        projects.append(permit.project)
        gate.settle(permit, sent=True)
    assert Counter(projects) == {"proj-a": 2, "proj-b": 2}
    with pytest.raises(DailyQuotaExhausted) as caught:
        gate.reserve(project="*", model=MODEL, tokens=0)
    midnight = dt.datetime(2026, 1, 11, 8, 0, tzinfo=UTC).timestamp()
    assert caught.value.reset_at == midnight
    assert "every project of the pool" in str(caught.value)
    clock.set_time(midnight)
    assert gate.reserve(project="*", model=MODEL, tokens=0).wait == 0.0


def test_a_per_day_429_sends_the_rest_of_the_day_elsewhere() -> None:
    clock = FakeClock(start=dt.datetime(2026, 1, 10, 20, 0, tzinfo=UTC).timestamp())
    gate = pool(clock)  # free tier: 250 RPD known, but the server says the day is spent
    first = gate.reserve(project="*", model=MODEL, tokens=0)
    assert first.project == "proj-a"
    spent = Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="Quota exceeded for metric: generate_content_free_tier_requests, limit: 250",
        category=Category.DAILY_QUOTA_EXHAUSTED,
        retryable=False,
    )
    gate.settle(first, sent=True, diagnosis=spent)
    assert gate.choose_project(MODEL) == "proj-b"
    assert {gate.reserve(project="*", model=MODEL, tokens=0).project for _ in range(5)} == {
        "proj-b"
    }
    room = gate.headroom("proj-a", MODEL)
    assert room.exhausted
    assert room.exhausted_until == dt.datetime(2026, 1, 11, 8, 0, tzinfo=UTC).timestamp()


def test_a_named_project_is_used_as_named() -> None:
    clock = FakeClock()
    gate = pool(clock, limits={MODEL: {"rpm": 1}})
    first = gate.reserve(project="proj-b", model=MODEL, tokens=0)
    second = gate.reserve(project="proj-b", model=MODEL, tokens=0)
    assert (first.project, second.project) == ("proj-b", "proj-b")
    assert second.wait == pytest.approx(60.0)


def test_max_wait_tries_every_project_then_reports_the_shortest_wait() -> None:
    clock = FakeClock()
    gate = pool(clock, limits={MODEL: {"rpm": 1}}, max_wait=10.0)
    a = gate.reserve(project="*", model=MODEL, tokens=0)
    gate.settle(a, sent=True)  # answered at once: leaves the window at +60
    clock.advance(20.0)
    b = gate.reserve(project="*", model=MODEL, tokens=0)
    gate.settle(b, sent=True)  # answered at +20: leaves at +80
    assert (a.project, b.project) == ("proj-a", "proj-b")
    with pytest.raises(QuotaWait) as caught:
        gate.reserve(project="*", model=MODEL, tokens=0)
    assert caught.value.wait == pytest.approx(40.0)  # the shorter of 40 s and 60 s


def test_keys_take_turns_and_never_show() -> None:
    gate = pool(FakeClock())
    assert [gate.api_key("proj-a") for _ in range(3)] == [KEY_A1, KEY_A2, KEY_A1]
    assert gate.api_key("proj-b") == KEY_B
    shown = repr(gate) + repr(gate.projects)
    assert KEY_A1 not in shown
    assert KEY_B not in shown
    assert gate.projects[0].redacted_keys == ("...0001", "...0002")
    with pytest.raises(ConfigError, match="not in the pool"):
        gate.api_key("proj-z")


@pytest.mark.parametrize(
    ("projects", "message"),
    [
        ([], "at least one project"),
        ([{"name": "a", "keys": []}], "needs at least one API key"),
        ([{"name": "a", "keys": "AIza-one-string"}], "a list of API keys"),
        ([{"name": "a", "keys": ["k1"], "tier": "gold"}], "projects.a.tier='gold'"),
        ([{"name": "a", "keys": ["k1"], "region": "eu"}], "unknown field(s) region"),
        ([{"name": "a", "keys": ["k1"]}, {"name": "a", "keys": ["k2"]}], "a listed more than once"),
        (
            [{"name": "a", "keys": ["k1"], "limits": {MODEL: {"rpm": 0}}}],
            f"projects.a.limits.{MODEL}.rpm=0 is not a limit; use a positive integer",
        ),
        (
            [{"name": "a", "keys": ["k1"], "limits": {MODEL: {"qpm": 5}}}],
            f"projects.a.limits.{MODEL} has unknown key(s) 'qpm'; allowed: rpm, tpm, rpd, tpd",
        ),
        ([{"name": "a", "keys": ["k1"], "limits": [5]}], "projects.a.limits must map a model"),
    ],
)
def test_bad_pools_are_refused_clearly(projects: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ProjectPool(projects)
    assert message in str(caught.value)


def test_a_key_shared_by_two_projects_is_refused_without_showing_it() -> None:
    secret = "AIzaSy-shared-secret-9999"
    with pytest.raises(ConfigError) as caught:
        ProjectPool([{"name": "a", "keys": [secret]}, {"name": "b", "keys": [secret]}])
    assert "a and b list the same API key" in str(caught.value)
    assert secret not in str(caught.value)


async def test_async_reserve_chooses_too() -> None:
    clock = FakeClock()
    gate = pool(clock, limits={MODEL: {"rpm": 1}})
    first = await gate.areserve(project="*", model=MODEL, tokens=0)
    second = await gate.areserve(project="*", model=MODEL, tokens=0)
    assert {first.project, second.project} == {"proj-a", "proj-b"}
    assert await gate.aconfirm(first) == 0.0
    await gate.asettle(first, sent=True)
    await gate.aclose()
