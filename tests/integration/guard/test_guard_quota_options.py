"""The quota gate a Guard builds itself from plain values (`projects=`, `quota_limits=`,
`quota_max_wait=`), against the emulator.

The Guard owns that gate: it paces with it, its events are the Guard's telemetry from
the first, and `close()` closes it. The real SDK through the Guard, the emulator on a
loopback port, a FakeClock (nothing here waits on the wire).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.config import load_config
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import QuotaWait, StoreError
from gemini_guard.guard import Guard, last_call
from gemini_guard.quota import Project, ProjectPool, QuotaLimiter
from gemini_guard.telemetry import Event, QuotaNotice
from tests.support.sdk_clients import emulator_client, keep_open

FLASH, LITE = "gemini-2.5-flash", "gemini-2.5-flash-lite"
KEY_A = "AIzaSyOWNPOOLPROJECTA-0123456789abcdef"
KEY_B = "AIzaSyOWNPOOLPROJECTB-0123456789abcdef"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _per_project(server: EmulatorServer, model: str, field: str) -> list[int]:
    cells = [m.get(model, {}) for m in server.emulator.stats()["projects"].values()]
    return sorted(cell.get(field, 0) for cell in cells if cell)


def _rejected(server: EmulatorServer, model: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for models in server.emulator.stats()["projects"].values():
        for reason, n in models.get(model, {}).get("rejected", {}).items():
            out[reason] = out.get(reason, 0) + n
    return out


def _requests(server: EmulatorServer, model: str) -> int:
    return sum(_per_project(server, model, "requests"))


def _notices(events: list[Event], kind: str) -> list[QuotaNotice]:
    return [e for e in events if isinstance(e, QuotaNotice) and e.notice == kind]


def _closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_guard_with_projects_paces_each_project_and_closes_its_pool(
    clock: FakeClock, tmp_path: Path
) -> None:
    with serve("free-tier", clock=clock) as server:
        guard = Guard(
            base_url=server.base_url,  # its own client, with the first project's key
            projects=[
                Project("a", keys=(KEY_A,), tier="free"),
                {"name": "b", "keys": [KEY_B], "tier": "free"},
            ],
            store=f"sqlite:///{tmp_path / 'state.db'}",
            models=[FLASH],
            clock=clock,
            log=False,
        )
        keep_open(guard.unguarded_client)
        pool = guard.quota
        assert isinstance(pool, ProjectPool)
        assert guard.engine.project == "*"  # the pool chooses
        served_by = []
        for i in range(20):  # 10 RPM per project on the free tier: 20 fit, spread
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
            info = last_call()
            assert info is not None
            served_by.append(info.attempts[-1].project)
        assert _per_project(server, FLASH, "admitted") == [10, 10]
        assert _rejected(server, FLASH) == {}
        assert sorted(p or "" for p in served_by) == ["a"] * 10 + ["b"] * 10
        assert clock.sleeps == []
        guard.close()
    with pytest.raises(StoreError, match="closed"):  # the Guard closed the pool it built
        pool.reserve(project="*", model=FLASH, tokens=1)


def test_quota_limits_replace_the_tier_figures_and_quota_max_wait_bounds_the_wait(
    clock: FakeClock,
) -> None:
    with serve("free-tier", clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY_A),
            models=[FLASH],
            tier="free",
            quota_limits={FLASH: {"rpm": 3}},
            quota_max_wait=5,
            clock=clock,
            log=False,
        )
        limiter = guard.quota
        assert isinstance(limiter, QuotaLimiter)
        table = QuotaLimiter(tier="free")
        assert limiter.budget("default", FLASH).requests == 3  # not the table's 10
        assert limiter.budget("default", FLASH).tokens == table.budget("default", FLASH).tokens
        assert limiter.budget("default", LITE) == table.budget("default", LITE)
        table.close()
        for i in range(3):
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
        # the fourth would wait most of a minute, more than the 5 s allowed: refused
        with pytest.raises(QuotaWait) as refused:
            guard.models.generate_content(model=FLASH, contents="one too many")
        assert refused.value.wait > 5
        assert _requests(server, FLASH) == 3  # nothing was sent for it
        guard.close()


def test_a_limit_learned_by_the_guards_own_pool_reaches_its_hooks(clock: FakeClock) -> None:
    cut = Scenario(name="cut", default_tier="free", limits={FLASH: {"free": {"rpm": 2}}})  # type: ignore[dict-item]
    events: list[Event] = []
    with serve(cut, clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY_A),
            projects=[Project("a", keys=(KEY_A,), tier="free")],
            models=[FLASH],
            clock=clock,
            hooks=[events.append],
            log=False,
        )
        for i in range(4):
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
        guard.close()
    learned = _notices(events, "limit_learned")
    assert [(e.model, e.metric, e.limit) for e in learned] == [(FLASH, "rpm", 2)]


def test_a_store_down_from_the_first_call_reaches_the_hooks_and_calls_go_on(
    clock: FakeClock,
) -> None:
    events: list[Event] = []
    down = f"redis://127.0.0.1:{_closed_port()}/0"
    with serve("free-tier", clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY_A),
            projects=[Project("a", keys=(KEY_A,), tier="free")],
            store=down,
            models=[FLASH],
            clock=clock,
            hooks=[events.append],
            log=False,
        )
        answer = guard.models.generate_content(model=FLASH, contents="hi")
        guard.close()
    assert answer.model_version == FLASH  # paced by the local ledger meanwhile
    degraded = _notices(events, "store_degraded")
    assert len(degraded) == 1
    assert "127.0.0.1" in degraded[0].message


def test_a_configuration_of_several_projects_is_the_guards_own_pool(
    clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve("free-tier", clock=clock) as server:
        path = tmp_path / "gemini-guard.toml"
        path.write_text(
            f'base_url = "{server.base_url}"\nmodels = ["{FLASH}"]\n'
            'tier = "free"\n[quota]\nmax_wait = 5\n'
            '[[projects]]\nname = "a"\napi_key_env = "GG_OWN_KEY_A"\n'
            '[[projects]]\nname = "b"\napi_key_env = "GG_OWN_KEY_B"\n'
            f'[projects.limits."{FLASH}"]\nrpm = 1\n',
            "utf-8",
        )
        monkeypatch.setenv("GG_OWN_KEY_A", KEY_A)
        monkeypatch.setenv("GG_OWN_KEY_B", KEY_B)
        options = load_config(path, env={}).guard_options()
        guard = Guard(**{**options, "clock": clock})
        keep_open(guard.unguarded_client)
        for i in range(11):  # a's 10 RPM and b's own 1
            guard.models.generate_content(model=FLASH, contents=f"p {i}")
        assert _per_project(server, FLASH, "admitted") == [1, 10]
        with pytest.raises(QuotaWait):  # both full for most of a minute: over max_wait
            guard.models.generate_content(model=FLASH, contents="one too many")
        assert _requests(server, FLASH) == 11
        guard.close()
