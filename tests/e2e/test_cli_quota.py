"""`gemini-guard quota` end to end: the console script reads a store a limiter filled."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Scenario, serve
from gemini_guard.guard import Guard
from gemini_guard.pacific import next_reset
from gemini_guard.quota import QuotaLimiter

SCRIPT = Path(sys.executable).with_name("gemini-guard")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "quota", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": str(SCRIPT.parent), **env},
    )


@pytest.fixture
def filled(tmp_path: Path) -> tuple[str, float]:
    """A SQLite store where two projects used flash and one used pro, just now."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    started = time.time()  # the CLI reads the real clock: fill the store at real "now"
    clock = FakeClock(start=started - 30.0)
    gate = QuotaLimiter(store=url, clock=clock, tier="free", latency_allowance=0.0)
    for tokens in (100, 200, 300):
        permit = gate.reserve(project="team-a", model="gemini-2.5-flash", tokens=tokens)
        gate.settle(permit, sent=True, input_tokens=tokens + 1)
        clock.advance(5.0)
    permit = gate.reserve(project="team-b", model="models/gemini-2.5-pro", tokens=50)
    gate.settle(permit, sent=True)
    gate.close()
    return url, started - 30.0


def test_json_shows_usage_limits_and_resets(filled: tuple[str, float]) -> None:
    url, first_sent = filled
    result = run("--store", url, "--tier", "free", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cache"] is None  # no --cache given
    ledgers: list[dict[str, Any]] = report["ledgers"]
    by_key = {(entry["project"], entry["model"]): entry for entry in ledgers}
    assert set(by_key) == {("team-a", "gemini-2.5-flash"), ("team-b", "gemini-2.5-pro")}
    flash = by_key[("team-a", "gemini-2.5-flash")]
    assert flash["minute"]["requests"] == 3
    assert flash["minute"]["requests_limit"] == 10  # free tier
    assert flash["minute"]["tokens"] == 101 + 201 + 301  # corrected from usageMetadata
    assert flash["day"]["requests"] == 3
    assert flash["day"]["requests_limit"] == 250
    # The oldest slot (answered at first_sent) leaves the minute at first_sent + 60.
    frees_in = flash["minute"]["frees_in_s"]
    assert 0.0 < frees_in <= 30.0 + 0.5
    assert frees_in == pytest.approx(first_sent + 60.0 - time.time(), abs=5.0)
    assert flash["day"]["resets_at"] == next_reset(time.time())
    assert 0.0 < flash["day"]["resets_in_s"] <= 25 * 3600
    pro = by_key[("team-b", "gemini-2.5-pro")]
    assert (pro["minute"]["requests"], pro["minute"]["requests_limit"]) == (1, 5)
    assert pro["day"]["requests_limit"] == 100


def test_table_without_a_tier_shows_usage_only(filled: tuple[str, float]) -> None:
    url, _ = filled
    result = run("--store", url)
    assert result.returncode == 0, result.stderr
    assert "team-a" in result.stdout
    assert "gemini-2.5-flash" in result.stdout
    assert "3 / 10" not in result.stdout  # auto: no limit is known up front
    tiered = run("--store", url, "--tier", "free")
    assert "3 / 10" in tiered.stdout
    assert "3 / 250" in tiered.stdout
    # The day column counts down to the Pacific midnight: hours while more than
    # one is left, minutes in the last hour (the run may straddle a minute).
    now = time.time()
    left = [math.ceil(next_reset(t) - t) for t in (now - 60.0, now)]
    shown = {f"{s // 3600}h" if s >= 3600 else f"{s // 60}m" for s in left}
    assert any(text in tiered.stdout for text in shown), (shown, tiered.stdout)


def test_a_missing_store_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "state.db"
    result = run("--store", f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert "does not exist yet" in result.stdout
    assert not path.exists()
    assert json.loads(run("--store", f"sqlite:///{path}", "--json").stdout) == {
        "store": f"sqlite:///{path}",
        "tier": "auto",
        "ledgers": [],
        "cache": None,
    }


def test_a_bad_store_url_is_a_clear_error() -> None:
    result = run("--store", "mysql://db/quota")
    assert result.returncode == 1
    assert "unknown scheme 'mysql'" in result.stderr
    assert "sqlite:///path/to/state.db" in result.stderr


def test_cache_counts_written_by_a_guard_show_in_another_process(tmp_path: Path) -> None:
    cache_url = f"sqlite:///{tmp_path / 'cache.db'}"
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    clock = FakeClock()
    with serve(Scenario(name="cache", default_tier="tier1"), clock=clock) as server:
        client = genai.Client(
            api_key="AIzaSyQUOTACLITESTKEY-0123456789abcdef",
            http_options=types.HttpOptions(base_url=server.base_url),
        )
        guard = Guard(client=client, clock=clock, cache=cache_url, project="team-c", log=False)
        try:
            for prompt in ("one", "two", "one", "one", "two"):
                guard.models.generate_content(
                    model="gemini-2.5-flash", contents=prompt, config={"temperature": 0}
                )
            assert server.emulator.stats()["totals"]["requests"] == 2
            mine = guard.cache.stats()  # type: ignore[union-attr]
            # Counters are filed under a fingerprint of the scope, never its name.
            label = guard.cache.stats_label  # type: ignore[union-attr]
        finally:
            guard.close()  # closes the cache it opened, which writes the last counts
            assert guard.cache is None
            client.close()
    result = run("--store", store_url, "--cache", cache_url, "--json")
    assert result.returncode == 0, result.stderr
    (team,) = json.loads(result.stdout)["cache"]
    assert team["project"] == label
    assert (team["hits"], team["misses"]) == (3, 2)
    assert team["hit_ratio"] == pytest.approx(0.6)
    assert team["tokens_saved"] == mine.tokens_saved > 0
    assert team["dollars_saved"] == pytest.approx(mine.dollars_saved)
    assert team["dollars_saved"] > 0
    table = run("--store", store_url, GEMINI_GUARD_CACHE=cache_url)  # or from the env
    assert table.returncode == 0, table.stderr
    assert label in table.stdout
    assert "team-c" not in table.stdout
    assert "60%" in table.stdout
    assert f"{mine.tokens_saved:,}" in table.stdout
    assert f"${mine.dollars_saved:,.4f}" in table.stdout


def test_a_missing_cache_file_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "cache.db"
    store = f"sqlite:///{tmp_path / 'state.db'}"
    result = run("--store", store, "--cache", f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert "No response-cache counts" in result.stdout
    assert "does not exist yet" in result.stdout
    assert not path.exists()
    assert (
        json.loads(run("--store", store, "--cache", f"sqlite:///{path}", "--json").stdout)["cache"]
        == []
    )


def test_a_memory_cache_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run("--store", f"sqlite:///{tmp_path / 'state.db'}", "--cache", "memory://")
    assert result.returncode == 1
    assert "lives and dies with one process" in result.stderr
    assert "sqlite:///" in result.stderr


def test_the_table_fits_80_columns_with_whole_headers(filled: tuple[str, float]) -> None:
    url, _ = filled
    result = subprocess.run(
        [str(SCRIPT), "quota", "--store", url, "--tier", "free"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "80", "PATH": str(SCRIPT.parent)},
    )
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "…" not in result.stdout  # no header or figure cut short
    for word in ("requests", "tokens", "today", "resets"):
        assert word in result.stdout


def test_it_names_the_store_it_read_and_defaults_to_the_cli_state_file(tmp_path: Path) -> None:
    result = run(HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path}/.cache/gemini-guard/state.db does not exist yet" in result.stdout
    assert "sqlite:///~/.cache/gemini-guard/state.db" in result.stdout
    helped = run("--help")
    assert "sqlite:///~/.cache/gemini-guard/state.db" in "".join(helped.stdout.split())
    config = tmp_path / "gemini-guard.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "team.db"}"\n', encoding="utf-8")
    from_config = run("--config", str(config), "--json")
    assert json.loads(from_config.stdout)["store"] == f"sqlite:///{tmp_path / 'team.db'}"
