"""The Guard's default quota pacing, and state shared through `store=`, against the emulator.

The real SDK through the Guard, the emulator on a loopback port. Quota walls run on a
ScaledClock (a FakeClock would jump while requests are on the wire); checks that
need no waiting run on a FakeClock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google import genai

from gemini_guard.call import NoQuota
from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard, last_call
from gemini_guard.policies import BreakerPolicy
from gemini_guard.quota import QuotaLimiter
from gemini_guard.telemetry import Event, ModelSkipped, QuotaNotice
from tests.support.sdk_clients import emulator_client

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
KEY = "AIzaSyPACINGTESTKEY-0123456789abcdef"


def client_for(server: EmulatorServer) -> genai.Client:
    return emulator_client(server, KEY)


def rejected(server: EmulatorServer, model: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for models in server.emulator.stats()["projects"].values():
        for reason, n in models.get(model, {}).get("rejected", {}).items():
            out[reason] = out.get(reason, 0) + n
    return out


def requests(server: EmulatorServer, model: str) -> int:
    return sum(
        m.get(model, {}).get("requests", 0) for m in server.emulator.stats()["projects"].values()
    )


async def _workload(guard: Guard, n: int, workers: int) -> list[str | None]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    served: list[str | None] = []

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            r = await guard.aio.models.generate_content(model=FLASH, contents=f"prompt {i}")
            served.append(r.model_version)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return served


def test_the_default_guard_paces_with_a_limiter_for_tier_auto() -> None:
    client = genai.Client(api_key=KEY)
    try:
        guard = Guard(client=client)
        assert guard.tier == "auto"
        assert isinstance(guard.quota, QuotaLimiter)
        assert repr(guard.quota) == "QuotaLimiter(store='memory://', tier='auto')"
        assert isinstance(Guard(client=client, quota=False).quota, NoQuota)
        own = QuotaLimiter(tier="tier1")
        assert Guard(client=client, quota=own).quota is own
        guard.close()
    finally:
        client.close()


async def test_tier_free_paces_a_quota_wall_without_a_single_429() -> None:
    clock = ScaledClock(120)
    with serve("free-tier", clock=clock) as server:
        with Guard(client=client_for(server), models=[FLASH], clock=clock, tier="free") as guard:
            served = await _workload(guard, 24, workers=4)
        assert served == [FLASH] * 24
        assert rejected(server, FLASH) == {}
        assert requests(server, FLASH) == 24


async def test_tier_auto_learns_the_free_tier_from_the_first_429s_then_paces() -> None:
    clock = ScaledClock(120)
    with serve("free-tier", clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH], clock=clock)
        served = await _workload(guard, 30, workers=4)
        assert guard.quota.budget("default", FLASH).requests == 10  # type: ignore[attr-defined]
        guard.close()
        got = rejected(server, FLASH)
    assert served == [FLASH] * 30
    # Only the requests already on the wire when the first 429 came can draw one;
    # from then on the revealed free-tier limits pace everything.
    assert 1 <= sum(got.values()) <= 4, got


def test_a_limit_cut_below_the_table_is_learned_and_told_loudly(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cut = Scenario(name="cut", default_tier="free", limits={FLASH: {"free": {"rpm": 2}}})  # type: ignore[dict-item]
    events: list[Event] = []
    with serve(cut, clock=clock) as server:
        guard = Guard(
            client=client_for(server),
            models=[FLASH],
            clock=clock,
            tier="free",
            hooks=[events.append],
            log=False,
        )
        for i in range(5):
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
        guard.close()
        # the table said 10 RPM: one 429 taught the Guard 2, and it paced by it after
        assert rejected(server, FLASH) == {"rpm": 1}
    learned = [e for e in events if isinstance(e, QuotaNotice) and e.notice == "limit_learned"]
    assert [(e.model, e.metric, e.limit) for e in learned] == [(FLASH, "rpm", 2)]
    assert "server enforces about 2 RPM on gemini-2.5-flash" in learned[0].message
    assert "server enforces about 2 RPM" in caplog.text  # a warning, even without log=True


def test_tier_auto_never_slows_a_paid_project(clock: FakeClock) -> None:
    paid = Scenario(name="paid", default_tier="tier1")
    with serve(paid, clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH], clock=clock)
        for i in range(40):  # more than the free tier's 10 RPM, at once
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
        guard.close()
        assert rejected(server, FLASH) == {}
    assert clock.sleeps == []  # nothing was held back


def test_quota_false_turns_pacing_off(clock: FakeClock) -> None:
    tiny = Scenario(name="tiny", default_tier="free", limits={FLASH: {"free": {"rpm": 2}}})  # type: ignore[dict-item]
    with serve(tiny, clock=clock) as server:
        guard = Guard(
            client=client_for(server), models=[FLASH], clock=clock, tier="free", quota=False
        )
        for i in range(3):
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
        # the third went out and drew the 429 a limiter would have avoided
        assert rejected(server, FLASH) == {"rpm": 1}


def test_two_guards_on_one_sqlite_store_share_breakers_and_quota(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    scenario = Scenario(
        name="pro-down",
        default_tier="free",
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    policy = BreakerPolicy(failure_threshold=1, cooldown=300)
    with serve(scenario, clock=clock) as server:
        events: list[Event] = []
        a, b = (
            Guard(
                client=client_for(server),
                models=[PRO, FLASH],
                clock=clock,
                store=store,
                tier="free",
                breaker=policy,
                hooks=[events.append] if name == "b" else [],
            )
            for name in ("a", "b")
        )
        assert a.models.generate_content(model=PRO, contents="x").model_version == FLASH
        # a's 503 opened pro's breaker in the shared store: b does not even ask pro
        assert b.models.generate_content(model=PRO, contents="y").model_version == FLASH
        assert requests(server, PRO) == 1
        skipped = [e for e in events if isinstance(e, ModelSkipped)]
        assert [(e.model, e.reason) for e in skipped] == [(PRO, "breaker_open")]
        # between them they use flash's 10 RPM; b's next call waits for a slot
        for i in range(4):
            a.models.generate_content(model=FLASH, contents=f"a{i}")
            b.models.generate_content(model=FLASH, contents=f"b{i}")
        assert clock.sleeps == []
        b.models.generate_content(model=FLASH, contents="one too many")
        assert sum(clock.sleeps) > 55
        assert rejected(server, FLASH) == {}
        a.close()
        b.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


KEY_A = "AIzaSyPOOLPROJECTA-0123456789abcdefgh"
KEY_B = "AIzaSyPOOLPROJECTB-0123456789abcdefgh"


def _per_project(server: EmulatorServer, model: str, field: str) -> list[int]:
    cells = [m.get(model, {}) for m in server.emulator.stats()["projects"].values()]
    return sorted(cell.get(field, 0) for cell in cells if cell)


def test_a_project_pool_spreads_attempts_over_its_projects(clock: FakeClock) -> None:
    from gemini_guard.quota.pool import Project, ProjectPool

    with serve("free-tier", clock=clock) as server:
        pool = ProjectPool(
            [Project("a", keys=(KEY_A,), tier="free"), Project("b", keys=(KEY_B,), tier="free")],
            clock=clock,
        )
        guard = Guard(client=client_for(server), models=[FLASH], clock=clock, quota=pool)
        infos: list[str | None] = []
        for i in range(20):  # 10 RPM per project: 20 fit in the first minute, spread
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
            info = last_call()
            assert info is not None
            infos.append(info.attempts[-1].project)
        guard.close()
        pool.close()
        assert _per_project(server, FLASH, "admitted") == [10, 10]
        assert rejected(server, FLASH) == {}
    assert clock.sleeps == []
    assert sorted(p or "" for p in infos) == ["a"] * 10 + ["b"] * 10


def test_a_spent_day_in_one_project_moves_to_the_next_before_falling_back(
    clock: FakeClock,
) -> None:
    from gemini_guard.quota.pool import Project, ProjectPool

    tiny = Scenario(name="rpd", default_tier="free", limits={FLASH: {"free": {"rpd": 3}}})  # type: ignore[dict-item]
    with serve(tiny, clock=clock) as server:
        # tier "auto": nothing known up front, so the pool takes a first (list order)
        pool = ProjectPool([Project("a", keys=(KEY_A,)), Project("b", keys=(KEY_B,))], clock=clock)
        # Another part of the app spends project a's day on flash (named project)...
        only_a = Guard(
            client=client_for(server), models=[FLASH], clock=clock, quota=pool, project="a"
        )
        for i in range(3):
            only_a.models.generate_content(model=FLASH, contents=f"a {i}")
        guard = Guard(client=client_for(server), models=[FLASH, LITE], clock=clock, quota=pool)
        first = guard.models.generate_content(model=FLASH, contents="x")
        info = last_call()
        assert info is not None
        # ...the pool tried a first (nothing told it a's day is spent): a's per-day 429
        # moved the call to b, on the same model, instead of falling back
        assert first.model_version == FLASH
        assert [(a.model, a.project, a.http_status) for a in info.attempts] == [
            (FLASH, "a", 429),
            (FLASH, "b", 200),
        ]
        served = [
            guard.models.generate_content(model=FLASH, contents=f"p {i}").model_version
            for i in range(4)
        ]
        # b's two left on flash; b's per-day 429; both days spent: flash-lite
        assert served == [FLASH, FLASH, LITE, LITE]
        assert rejected(server, FLASH) == {"rpd": 2}  # one per project, never again
        for g in (only_a, guard):
            g.close()
        pool.close()
