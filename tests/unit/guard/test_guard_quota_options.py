"""The Guard's own quota gate from plain values, and the configuration as its options.

`Guard(quota_limits=, quota_max_wait=, projects=)` builds the gate; options that
contradict each other are refused with a message saying which. `GuardConfig.
guard_options()` is the keyword arguments of `Guard(**options)`, and
`guard_from_config` is that plus the caller's overrides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai

from gemini_guard.call import NoQuota
from gemini_guard.clock import FakeClock
from gemini_guard.config import load_config
from gemini_guard.errors import ConfigError
from gemini_guard.guard import Guard, guard_from_config
from gemini_guard.quota import Project, ProjectPool, QuotaLimiter
from gemini_guard.telemetry import Event, QuotaNotice

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
KEY_A = "AIzaSyUNITPOOLPROJECTA-0123456789abcd"
KEY_B = "AIzaSyUNITPOOLPROJECTB-0123456789abcd"
PROJECTS = [Project("a", keys=(KEY_A,), tier="free"), Project("b", keys=(KEY_B,), tier="tier1")]


@pytest.fixture
def client() -> Iterator[genai.Client]:
    made = genai.Client(api_key="AIzaSyUNITFAKEFAKEFAKEFAKEFAKE123456")
    yield made
    made.close()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gemini-guard.toml"
    path.write_text(text, "utf-8")
    return path


def test_projects_build_a_pool_the_guard_owns_with_its_tiers_and_limits(
    client: genai.Client,
) -> None:
    guard = Guard(
        client=client,
        projects=[*PROJECTS[:1], {"name": "b", "keys": [KEY_B], "limits": {PRO: {"rpm": 60}}}],
        tier="tier1",
        quota_limits={PRO: {"rpm": 2}},
        clock=FakeClock(),
        log=False,
    )
    pool = guard.quota
    assert isinstance(pool, ProjectPool)
    assert guard.engine.project == "*"
    assert pool.limiter.budget("a", FLASH).requests == 10  # its own tier: free
    assert pool.limiter.budget("b", FLASH).requests == 2000  # the Guard's tier: tier1
    assert pool.limiter.budget("a", PRO).requests == 2  # quota_limits
    assert pool.limiter.budget("b", PRO).requests == 60  # its own limits over them
    assert guard.key_for("b") == KEY_B
    guard.close()


def test_a_guard_without_a_client_sends_with_the_first_projects_key() -> None:
    guard = Guard(projects=PROJECTS, base_url="http://127.0.0.1:9", log=False)
    try:
        api = guard.unguarded_client._api_client
        assert api.api_key == KEY_A
        assert api._http_options.base_url == "http://127.0.0.1:9"
    finally:
        guard.close()
        guard.unguarded_client.close()


def test_a_named_project_must_be_in_the_pool(client: genai.Client) -> None:
    with pytest.raises(ConfigError, match=r"project='c' is not in the pool \(a, b\)") as caught:
        Guard(client=client, projects=PROJECTS, project="c")
    assert KEY_A not in str(caught.value)
    guard = Guard(client=client, projects=PROJECTS, project="b", log=False)
    assert guard.engine.project == "b"  # used as named
    guard.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quota": False, "quota_limits": {PRO: {"rpm": 2}}}, r"quota_limits=.*quota=False"),
        ({"quota": False, "quota_max_wait": 30}, r"quota_max_wait=.*quota=False turns"),
        ({"quota": "own", "projects": PROJECTS}, r"projects=.*quota= is your own gate"),
        ({"quota_max_wait": -1}, r"quota_max_wait=-1 must be a number of seconds >= 0"),
        ({"quota_max_wait": "30"}, r"quota_max_wait='30' must be a number"),
        ({"quota_limits": [PRO]}, r"quota_limits must map a model to its limits"),
        ({"quota_limits": {PRO: {"rpn": 2}}}, r"quota_limits\.gemini-2\.5-pro .*'rpn'"),
        ({"projects": "a"}, r"projects= must be a list of projects"),
        ({"projects": []}, r"at least one project"),
        ({"base_url": "http://127.0.0.1:9"}, r"base_url= is for the client the Guard makes"),
    ],
)
def test_contradicting_or_wrong_options_are_refused_plainly(
    client: genai.Client, options: dict[str, Any], message: str
) -> None:
    if options.get("quota") == "own":
        options["quota"] = QuotaLimiter()
    with pytest.raises(ConfigError, match=message):
        Guard(client=client, **options)
    if isinstance(options.get("quota"), QuotaLimiter):
        options["quota"].close()


def test_a_refused_guard_leaves_no_store_open(client: genai.Client, tmp_path: Path) -> None:
    import gc

    from gemini_guard.stores.sqlite import SQLiteFile

    db = tmp_path / "state.db"
    with pytest.raises(ConfigError, match="not in the pool"):
        Guard(client=client, projects=PROJECTS, project="c", store=f"sqlite:///{db}")
    # The breaker store and the pool were opened before the project was checked:
    # the refusal closed them (the traceback still holds them).
    opened = [o for o in gc.get_objects() if isinstance(o, SQLiteFile) and o.path == db]
    assert opened
    assert all(o._closed for o in opened)


def test_a_single_project_configuration_gives_its_limits_over_the_shared_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        'tier = "tier1"\n[quota]\nmax_wait = 30\n'
        f'[quota.limits."{PRO}"]\nrpm = 2\ntpm = 1000\n'
        f'[quota.limits."{FLASH}"]\nrpm = 5\n'
        '[[projects]]\nname = "solo"\napi_key_env = "GG_UNIT_KEY"\ntier = "free"\n'
        f'[projects.limits."{PRO}"]\nrpm = 7\n',
    )
    monkeypatch.setenv("GG_UNIT_KEY", KEY_A)
    options = load_config(path, env={}).guard_options()
    assert options["project"] == "solo"
    assert options["tier"] == "free"
    assert options["api_key"] == KEY_A
    assert options["quota_max_wait"] == 30
    assert options["quota_limits"] == {PRO: {"rpm": 7, "tpm": 1000}, FLASH: {"rpm": 5}}
    assert "projects" not in options
    guard = Guard(**{**options, "clock": FakeClock()})
    try:
        limiter = guard.quota
        assert isinstance(limiter, QuotaLimiter)
        assert limiter.budget("solo", PRO).requests == 7
        assert limiter.budget("solo", PRO).tokens == 1000
    finally:
        guard.close()
        guard.unguarded_client.close()


def test_several_projects_are_options_for_a_pool_and_each_needs_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        'tier = "tier1"\n'
        '[[projects]]\nname = "a"\napi_key_env = "GG_UNIT_A"\ntier = "free"\n'
        '[[projects]]\nname = "b"\napi_key_env = "GG_UNIT_B"\n'
        f'[projects.limits."{PRO}"]\nrpm = 60\n',
    )
    config = load_config(path, env={})
    monkeypatch.setenv("GG_UNIT_A", KEY_A)
    monkeypatch.delenv("GG_UNIT_B", raising=False)
    with pytest.raises(ConfigError, match=r"projects\[1\]\.api_key_env: .*GG_UNIT_B") as caught:
        config.guard_options()
    assert "every project's key" in str(caught.value)
    monkeypatch.setenv("GG_UNIT_B", KEY_B)
    options = config.guard_options()
    assert "project" not in options  # the pool chooses
    assert options["tier"] == "tier1"
    assert [(p.name, p.tier, dict(p.limits)) for p in options["projects"]] == [
        ("a", "free", {}),
        ("b", "tier1", {PRO: options["projects"][1].limits[PRO]}),
    ]
    assert options["projects"][1].limits[PRO].rpm == 60


def test_quota_off_in_the_configuration_is_quota_false(tmp_path: Path) -> None:
    path = write(tmp_path, f'[quota]\nenabled = false\n[quota.limits."{PRO}"]\nrpm = 2\n')
    options = load_config(path, env={}).guard_options(require_key=False)
    assert options["quota"] is False
    assert "quota_limits" not in options


def test_the_first_projects_key_is_needed_unless_a_client_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: genai.Client
) -> None:
    path = write(
        tmp_path,
        'base_url = "http://127.0.0.1:9"\n[[projects]]\nname = "m"\napi_key_env = "GG_UNSET"\n',
    )
    monkeypatch.delenv("GG_UNSET", raising=False)
    config = load_config(path, env={})
    with pytest.raises(ConfigError, match=r"projects\[0\]\.api_key_env: .*GG_UNSET is not set"):
        config.guard_options()
    assert "api_key" not in config.guard_options(require_key=False)
    # The caller's client replaces the configuration's key and base_url.
    with guard_from_config(config, client=client, log=False) as guard:
        assert guard.unguarded_client is client
        assert guard.engine.project == "m"


def test_a_quota_override_replaces_the_configurations_pacing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: genai.Client
) -> None:
    path = write(
        tmp_path,
        '[quota]\nmax_wait = 30\n[[projects]]\nname = "a"\napi_key_env = "GG_UNIT_A"\n'
        '[[projects]]\nname = "b"\napi_key_env = "GG_UNIT_B"\n',
    )
    monkeypatch.setenv("GG_UNIT_A", KEY_A)
    monkeypatch.delenv("GG_UNIT_B", raising=False)  # no pool: b's key is not needed
    own = QuotaLimiter(tier="free")
    with guard_from_config(load_config(path, env={}), client=client, quota=own) as guard:
        assert guard.quota is own
        assert guard.engine.project == "a"  # as the first project
    own.close()
    with guard_from_config(load_config(path, env={}), client=client, quota=False) as guard:
        assert isinstance(guard.quota, NoQuota)


def test_hooks_given_to_guard_from_config_come_before_the_configurations_file(
    tmp_path: Path, client: genai.Client
) -> None:
    from gemini_guard.quota import LimitLearned

    jsonl = tmp_path / "events.jsonl"
    path = write(tmp_path, f'tier = "free"\n[telemetry]\nlog = false\njsonl = "{jsonl}"\n')
    events: list[Event] = []
    with guard_from_config(
        load_config(path, env={}), client=client, clock=FakeClock(), hooks=[events.append]
    ) as guard:
        limiter = guard.quota
        assert isinstance(limiter, QuotaLimiter)
        # the limiter the Guard built tells its news to both
        limiter._on_event(  # type: ignore[misc]
            LimitLearned("default", FLASH, "rpm", 1, 2, 10, "quota_value", 0.0)
        )
    assert [e.notice for e in events if isinstance(e, QuotaNotice)] == ["limit_learned"]
    written = [json.loads(line) for line in jsonl.read_text("utf-8").splitlines()]
    assert [e["event"] for e in written] == ["quota_notice"]
