"""gemini-guard.toml + GEMINI_GUARD_* env: one validated configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.config import load_config
from gemini_guard.errors import ConfigError
from gemini_guard.guard import guard_from_config
from gemini_guard.policies import RetryPolicy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gemini-guard.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.tier == "auto"  # pace only by what the server reveals
    assert config.retry.policy() == RetryPolicy.DEFAULT
    assert config.source == "defaults"


def test_file_with_preset_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
tier = "tier1"
models = ["gemini-2.5-pro", "gemini-2.5-flash"]
[retry]
preset = "interactive"
max_retries = 2
[breaker]
cooldown = 45
[[projects]]
name = "main"
api_key_env = "MY_GEMINI_KEY"
""",
    )
    config = load_config(path, env={})
    assert config.models == ("gemini-2.5-pro", "gemini-2.5-flash")
    policy = config.retry.policy()
    assert policy == RetryPolicy.INTERACTIVE.with_options(max_retries=2)
    assert config.breaker.policy().cooldown == 45.0
    assert config.projects[0].api_key_env == "MY_GEMINI_KEY"
    assert config.source == str(path)


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'tier = "free"\n[retry]\npreset = "batch"\n')
    env = {
        "GEMINI_GUARD_TIER": "tier2",
        "GEMINI_GUARD_MODELS": "gemini-2.5-flash, gemini-2.5-flash-lite",
        "GEMINI_GUARD_RETRY__MAX_RETRIES": "7",
        "GEMINI_GUARD_TELEMETRY__JSONL": str(tmp_path / "e.jsonl"),
        "UNRELATED": "x",
    }
    config = load_config(path, env=env)
    assert config.tier == "tier2"
    assert config.models == ("gemini-2.5-flash", "gemini-2.5-flash-lite")
    assert config.retry.policy() == RetryPolicy.BATCH.with_options(max_retries=7)
    assert config.telemetry.jsonl == str(tmp_path / "e.jsonl")


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, 'tier = "tier3"\n')
    assert load_config(env={"GEMINI_GUARD_CONFIG": str(path)}).tier == "tier3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('tier = "gold"', ["tier", "'gold'", "'auto', 'free', 'tier1', 'tier2' or 'tier3'"]),
        ("[quota]\nmax_wiat = 3", ["quota.max_wiat", "unknown field", "max_wait"]),
        ('[quota.limits."gemini-2.5-pro"]\nrpn = 2', ["quota.limits.gemini-2.5-pro.rpn", "'rpm'"]),
        (
            '[quota.limits."gemini-2.5-pro"]\nrpm = 0',
            ["quota", "limits.gemini-2.5-pro.rpm must be a positive integer"],
        ),
        (
            '[[projects]]\nname = "a"\n[projects.limits."gemini-2.5-pro"]\nrpm = 0',
            ["projects", "limits.gemini-2.5-pro.rpm must be a positive integer, got 0"],
        ),
        (
            '[[projects]]\nname = "a"\n[projects.limits."gemini-2.5-pro"]\nrpn = 60',
            ["projects[0].limits.gemini-2.5-pro.rpn", "'rpm'"],
        ),
        ("[retry]\nmax_retrys = 3", ["retry.max_retrys", "unknown field", "max_retries"]),
        ("[retry]\nbase = 10\ncap = 5", ["retry", "cap (5.0) must be >= base (10.0)"]),
        ("[breaker]\nfailure_ratio = 2", ["breaker.failure_ratio", "2"]),
        ('store = "postgres://x"', ["store", "postgres://x"]),
        ("colour = 1", ["colour", "unknown field", "models"]),
    ],
)
def test_a_wrong_field_names_field_value_allowed_and_file(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    for part in [*expected, str(path)]:
        assert part in message


def test_a_wrong_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="GEMINI_GUARD_RETRY__MAX_RETRIES") as caught:
        load_config(env={"GEMINI_GUARD_RETRY__MAX_RETRIES": "lots"})
    assert "'lots'" in str(caught.value)


def test_a_literal_key_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    key = "AIzaSyTHISISNOTAKEYBUTLOOKSLIKEONE12345"
    path = write(tmp_path, f'[[projects]]\nname = "p"\napi_key = "{key}"\n')
    with pytest.raises(ConfigError, match="api_key_env") as caught:
        load_config(path, env={})
    assert key not in str(caught.value)


def test_missing_file_and_bad_toml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "tier = "), env={})


def test_build_guard_reads_the_key_from_the_named_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        '[[projects]]\nname = "main"\napi_key_env = "GG_TEST_KEY"\n[retry]\npreset = "batch"\n',
    )
    config = load_config(path, env={})
    monkeypatch.delenv("GG_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="GG_TEST_KEY"):
        guard_from_config(config)
    monkeypatch.setenv("GG_TEST_KEY", "AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE1234567")
    guard = guard_from_config(config, clock=FakeClock())
    assert guard.retry == RetryPolicy.BATCH
    assert guard.engine.project == "main"
    guard.unguarded_client.close()


def test_build_guard_paces_by_the_configured_tier_store_and_quota_section(
    tmp_path: Path,
) -> None:
    from google import genai

    from gemini_guard.call import NoQuota
    from gemini_guard.policies import SQLiteBreakerStore
    from gemini_guard.quota import QuotaLimiter
    from gemini_guard.telemetry import Event, QuotaNotice

    db = tmp_path / "state.db"
    path = write(
        tmp_path,
        f'tier = "free"\nstore = "sqlite:///{db}"\n'
        '[quota]\nmax_wait = 30\n[quota.limits."gemini-2.5-pro"]\nrpm = 2\n',
    )
    client = genai.Client(api_key="AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE1234567")
    events: list[Event] = []
    try:
        guard = guard_from_config(
            load_config(path, env={}), client=client, clock=FakeClock(), hooks=[events.append]
        )
        limiter = guard.quota
        assert isinstance(limiter, QuotaLimiter)
        assert limiter.store.url == f"sqlite:///{db}"
        assert isinstance(guard.engine.breaker_store, SQLiteBreakerStore)
        assert limiter.budget("default", "gemini-2.5-pro").requests == 2  # the override
        assert limiter.budget("default", "gemini-2.5-flash").requests == 10  # the free table
        # the limiter built for the Guard reports through the Guard's sinks
        from gemini_guard.quota import LimitLearned

        limiter._on_event(  # type: ignore[misc]
            LimitLearned("default", "gemini-2.5-pro", "rpm", 1, 2, 2, "quota_value", 0.0)
        )
        assert [e.notice for e in events if isinstance(e, QuotaNotice)] == ["limit_learned"]
        guard.close()

        off = write(tmp_path, "[quota]\nenabled = false\n")
        unpaced = guard_from_config(load_config(off, env={}), client=client)
        assert isinstance(unpaced.quota, NoQuota)
        env = {"GEMINI_GUARD_QUOTA__ENABLED": "false"}
        assert isinstance(guard_from_config(load_config(env=env), client=client).quota, NoQuota)
    finally:
        client.close()


def test_several_projects_build_a_pool_that_picks_the_project_per_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gemini_guard.quota.pool import ProjectPool

    path = write(
        tmp_path,
        '[[projects]]\nname = "team-a"\napi_key_env = "GG_KEY_A"\ntier = "free"\n'
        '[[projects]]\nname = "team-b"\napi_key_env = "GG_KEY_B"\ntier = "tier1"\n',
    )
    config = load_config(path, env={})
    monkeypatch.setenv("GG_KEY_A", "AIzaSyTEAMAFAKEFAKEFAKEFAKEFAKE12345678")
    monkeypatch.delenv("GG_KEY_B", raising=False)
    with pytest.raises(ConfigError, match=r"projects\[1\].api_key_env: .*GG_KEY_B"):
        guard_from_config(config)
    monkeypatch.setenv("GG_KEY_B", "AIzaSyTEAMBFAKEFAKEFAKEFAKEFAKE12345678")
    guard = guard_from_config(config, clock=FakeClock())
    try:
        pool = guard.quota
        assert isinstance(pool, ProjectPool)
        assert [(p.name, p.tier) for p in pool.projects] == [
            ("team-a", "free"),
            ("team-b", "tier1"),
        ]
        assert guard.engine.project == "*"  # the pool chooses
        assert pool.limiter.budget("team-a", "gemini-2.5-flash").requests == 10
        assert pool.limiter.budget("team-b", "gemini-2.5-flash").requests == 2000
    finally:
        guard.close()
        guard.unguarded_client.close()


def test_a_projects_own_limits_override_the_shared_ones_for_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gemini_guard.quota import QuotaLimiter
    from gemini_guard.quota.pool import ProjectPool

    pro = "gemini-2.5-pro"
    path = write(
        tmp_path,
        'tier = "tier1"\n[quota.limits."gemini-2.5-pro"]\nrpm = 2\n'
        '[[projects]]\nname = "team-a"\napi_key_env = "GG_KEY_A"\n'
        '[[projects]]\nname = "team-b"\napi_key_env = "GG_KEY_B"\n'
        '[projects.limits."gemini-2.5-pro"]\nrpm = 60\ntpm = 500000\n',
    )
    monkeypatch.setenv("GG_KEY_A", "AIzaSyTEAMAFAKEFAKEFAKEFAKEFAKE12345678")
    monkeypatch.setenv("GG_KEY_B", "AIzaSyTEAMBFAKEFAKEFAKEFAKEFAKE12345678")
    config = load_config(path, env={})
    assert config.projects[1].limits == {pro: {"rpm": 60, "tpm": 500000}}
    guard = guard_from_config(config, clock=FakeClock())
    try:
        pool = guard.quota
        assert isinstance(pool, ProjectPool)
        table = pool.limiter.budget("team-a", "gemini-2.5-flash")
        assert pool.limiter.budget("team-a", pro).requests == 2  # the shared override
        assert pool.limiter.budget("team-b", pro).requests == 60  # its own
        assert pool.limiter.budget("team-b", pro).tokens == 500_000
        assert pool.limiter.budget("team-b", "gemini-2.5-flash") == table  # other models alike
    finally:
        guard.close()
        guard.unguarded_client.close()
    # One project: its limits still apply, through the Guard's own limiter.
    single = write(
        tmp_path,
        '[[projects]]\nname = "solo"\napi_key_env = "GG_KEY_A"\n'
        '[projects.limits."gemini-2.5-pro"]\nrpm = 7\n',
    )
    guard = guard_from_config(load_config(single, env={}), clock=FakeClock())
    try:
        assert isinstance(guard.quota, QuotaLimiter)
        assert guard.quota.budget("solo", pro).requests == 7
    finally:
        guard.close()
        guard.unguarded_client.close()


def test_our_variables_that_are_not_fields_are_not_read_as_configuration() -> None:
    env = {
        "GEMINI_GUARD_DEBUG": "1",
        "GEMINI_GUARD_MODEL_TABLE": "/tmp/models.toml",
        "GEMINI_GUARD_TIER": "tier1",
    }
    config = load_config(env=env)
    assert config.tier == "tier1"
    with pytest.raises(ConfigError, match="debgu"):
        load_config(env={"GEMINI_GUARD_DEBGU": "1"})
