"""`gemini-guard models` and `plan` with models the shipped table does not know, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve

SCRIPT = Path(sys.executable).with_name("gemini-guard")
NEW = "gemini-9-ultra-preview"  # a model released after this table was written


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    scenario = {
        "name": "new-models",
        "quotas": False,
        "models": {NEW: {"input_token_limit": 2_000_000, "output_token_limit": 131_072}},
    }
    with serve(scenario, clock=FakeClock()) as server:
        yield server


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**clean, "COLUMNS": "200", "XDG_CONFIG_HOME": str(cwd / "config"), **env},
    )


def test_models_shows_the_shipped_table(tmp_path: Path) -> None:
    shown = run("models", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for name in ("gemini-3.1-pro-preview", "gemini-3-flash-preview", "gemini-2.0-flash"):
        assert name in shown.stdout
    as_json = run("models", "--json", cwd=tmp_path)
    table = {m["name"]: m for m in json.loads(as_json.stdout)["models"]}
    pro = table["gemini-2.5-pro"]
    assert pro["price"]["input_long"] == 2.5
    assert pro["price"]["batch_discount"] == 0.5
    assert pro["tiers"]["free"]["rpm"] == 5
    assert table["gemini-3.1-pro-preview"]["tiers"] == {}  # none published
    assert table["gemini-embedding-001"]["methods"][0] == "embedContent"
    assert all(m["checked"] for m in table.values())
    assert NEW not in table


def test_refresh_writes_the_local_table_and_plan_uses_it(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    local = tmp_path / "models.toml"
    env = {
        "GEMINI_API_KEY": "test-key",
        "GOOGLE_GEMINI_BASE_URL": emulator.base_url,
        "GEMINI_GUARD_MODEL_TABLE": str(local),
    }
    refreshed = run("models", "--refresh", "--json", cwd=tmp_path, **env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert f"to {local}" in refreshed.stderr
    table = {m["name"]: m for m in json.loads(refreshed.stdout)["models"]}
    assert table[NEW]["input_token_limit"] == 2_000_000
    assert table[NEW]["output_token_limit"] == 131_072
    assert table[NEW]["source"] == "models.list"
    assert table[NEW]["price"] is None
    assert "generateContent" in table[NEW]["methods"]
    # A model both know keeps its shipped prices and limits.
    assert table["gemini-2.5-flash"]["source"] == "models.list"
    assert table["gemini-2.5-flash"]["price"]["input"] == 0.30
    assert table["gemini-2.5-flash"]["tiers"]["free"]["rpm"] == 10
    assert emulator.emulator.stats()["totals"]["requests"] >= 1  # the models.list call(s)
    # The local table is read by later commands.
    shown = run("models", cwd=tmp_path, GEMINI_GUARD_MODEL_TABLE=str(local))
    assert f"{NEW} *" in shown.stdout

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 1, "prompt": "你好" * 10}) + "\n")
    plan = run(
        "plan", str(source), "--model", NEW, cwd=tmp_path, GEMINI_GUARD_MODEL_TABLE=str(local)
    )
    assert plan.returncode == 0, plan.stderr
    assert "not in the model table" not in plan.stdout  # the local table knows it
    assert "tokens: 12 input" in plan.stdout
    assert "time:   unknown" in plan.stdout
    assert "cost:   unknown" in plan.stdout


def test_refresh_without_a_key_says_what_to_set(tmp_path: Path) -> None:
    failed = run("models", "--refresh", cwd=tmp_path)
    assert failed.returncode == 1
    assert "GEMINI_API_KEY" in failed.stderr


def test_a_broken_local_table_is_named(tmp_path: Path) -> None:
    local = tmp_path / "models.toml"
    local.write_text("[models\n")
    failed = run("models", cwd=tmp_path, GEMINI_GUARD_MODEL_TABLE=str(local))
    assert failed.returncode == 1
    assert str(local) in failed.stderr
    assert "--refresh" in failed.stderr


def test_plan_estimates_what_it_can_for_an_unknown_model(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": i, "prompt": "请用三句话总结这篇文章。"}) + "\n" for i in range(10)
        )
    )
    plan = run("plan", str(source), "--model", "gemini-9-nano", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "gemini-9-nano is not in the model table" in plan.stdout
    assert "tokens: 80 input" in plan.stdout  # 10 x (11 Han x 0.6 + 1 full-width mark)
    assert "time:   unknown" in plan.stdout
    assert '[quota.limits."gemini-9-nano"]' in plan.stdout
    assert '[prices."gemini-9-nano"]' in plan.stdout

    config = tmp_path / "gemini-guard.toml"
    config.write_text(
        '[quota.limits."gemini-9-nano"]\nrpm = 2\n\n'
        '[prices."gemini-9-nano"]\ninput = 1.0\noutput = 4.0\n'
    )
    plan = run(
        "plan", str(source), "--model", "gemini-9-nano", "--config", str(config), cwd=tmp_path
    )
    assert plan.returncode == 0, plan.stderr
    assert "time:   5.0 minutes (rpm binds) at RPM 2" in plan.stdout
    assert "from the config" in plan.stdout
    assert "time:   unknown" not in plan.stdout


def test_plan_for_a_gemini_3_model_prices_it_but_has_no_published_limits(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 1, "prompt": "Summarize the quarter."}) + "\n")
    plan = run("plan", str(source), "--model", "gemini-3-pro-preview", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "time:   unknown" in plan.stdout
    assert "input $2.0/1M, output $12.0/1M" in plan.stdout
    assert "prompts over 200k tokens cost more: input $4.0/1M" in plan.stdout
