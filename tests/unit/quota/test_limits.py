"""Which limits apply: the tier table, per-project tiers, overrides, and bad config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_guard.errors import ConfigError
from gemini_guard.quota import LimitPolicy, open_store
from gemini_guard.quota.limits import normalize_model
from gemini_guard.quota.stores.memory import MemoryStore
from gemini_guard.quota.stores.sqlite import SQLiteStore
from gemini_guard.tiers import Limits


def test_tier_table_and_auto() -> None:
    policy = LimitPolicy.build(tier="free", project_tiers={"paid-proj": "tier1"})
    assert policy.configured("p", "gemini-2.5-flash") == Limits(rpm=10, tpm=250_000, rpd=250)
    assert policy.configured("paid-proj", "gemini-2.5-flash").rpm == 2000
    assert LimitPolicy.build().configured("p", "gemini-2.5-flash") == Limits()
    assert policy.configured("p", "some-future-model") == Limits()


def test_override_replaces_only_what_it_names() -> None:
    policy = LimitPolicy.build(tier="free", overrides={"models/gemini-2.5-pro": {"rpm": 2}})
    assert policy.configured("p", "gemini-2.5-pro") == Limits(rpm=2, tpm=250_000, rpd=100)
    auto = LimitPolicy.build(overrides={"gemini-2.5-pro": Limits(rpd=7)})
    assert auto.configured("p", "gemini-2.5-pro") == Limits(rpd=7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tier": "gold"}, "tier='gold' is not a tier; use one of free, tier1"),
        ({"project_tiers": {"x": "paid"}}, "projects.x.tier='paid'"),
        ({"overrides": {"gemini-2.5-pro": {"rpn": 2}}}, "unknown key(s) 'rpn'"),
        ({"overrides": {"gemini-2.5-pro": {"rpm": 0}}}, "limits.gemini-2.5-pro.rpm=0"),
        ({"overrides": {"gemini-2.5-pro": {"rpm": "5"}}}, "use a positive integer"),
        ({"overrides": {"gemini-2.5-pro": 5}}, "must be a mapping"),
        ({"overrides": {"a:b": {"rpm": 1}}}, "is not a Gemini model id"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LimitPolicy.build(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_normalize_model() -> None:
    assert normalize_model("models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert normalize_model("gemini-2.5-flash-lite") == "gemini-2.5-flash-lite"


@pytest.mark.parametrize(
    "bad", ["", "models/", "gemini{x}", "proj:gemini", "tunedModels/x", "gemini 2.5", "a\tb"]
)
def test_a_name_that_would_confuse_a_store_key_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not a Gemini model id; use a name such as"):
        normalize_model(bad)


def test_open_store_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"sqlite:///{tmp_path}/a/b.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "a" / "b.db"
    assert store.path.exists()
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://localhost/db", "unknown scheme 'mysql'"),
        ("state.db", "is not a store URL"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
        ("memory://somewhere", "takes no path"),
        ("sqlite:///x.db?mode=ro", "takes no options"),
    ],
)
def test_open_store_rejects_what_no_backend_serves(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert message in str(caught.value)
    assert "memory://" in str(caught.value) or "sqlite" in str(caught.value)
