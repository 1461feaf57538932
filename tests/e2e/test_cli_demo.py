"""`gemini-guard demo`, the README's main job, end to end on a small workload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _row(output: str, name: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no {name!r} row in:\n{output}")


def test_demo_shows_the_guard_losing_nothing_where_the_guide_loses(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("gemini-guard")
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TMPDIR": str(tmp_path)}
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)  # the demo needs no key
    done = subprocess.run(
        [str(exe), "demo", "--prompts", "24", "--concurrency", "4", "--time-scale", "600"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    guard = _row(done.stdout, "Guard")
    guide = _row(done.stdout, "guide's loop")
    # columns: name, lost, served, sent, 429s, 5xx, emulated time, minimum
    assert guard[1] == "0"
    assert guard[2] == "24/24"
    assert int(guide[1]) + int(guide[2].split("/")[0]) == 24
    # The Guard honours the server's delays: fewer 429s than the guide's blind loop.
    assert int(guard[4]) < int(guide[4])
    assert "emulated time" in done.stdout
    # The report it names is kept, in the one folder the run made.
    (folder,) = tmp_path.iterdir()
    shown = "".join(done.stdout.split())  # a long path may be wrapped
    reports = [f for f in folder.iterdir() if f.name != "events.jsonl"]
    assert len(reports) == 1
    assert f"run:{reports[0]}" in shown
    if int(guide[1]) > 0:
        assert f"gave up on {guide[1]} prompts" in done.stdout.replace("\n", " ")


def test_demo_builds_its_guard_from_config_and_rejects_a_bad_one(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("gemini-guard")
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    env.pop("GEMINI_API_KEY", None)
    good = tmp_path / "gemini-guard.toml"
    good.write_text(
        'models = ["gemini-2.5-flash-lite"]\ntier = "free"\n[retry]\npreset = "batch"\n',
        encoding="utf-8",
    )
    args = [str(exe), "demo", "--prompts", "12", "--concurrency", "4", "--speed", "600"]
    done = subprocess.run(
        [*args, "--config", str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    guard = _row(done.stdout, "Guard")
    assert guard[1:3] == ["0", "12/12"]
    # flash-lite alone, paced by the free table until the first 429s reveal the cut:
    # only requests already in flight then (at most the 4 workers) draw one
    assert int(guard[4]) <= 4
    assert f"built from {good}" in done.stdout.replace("\n", "")

    bad = tmp_path / "bad.toml"
    bad.write_text('tier = "gold"\n', encoding="utf-8")
    refused = subprocess.run(
        [*args, "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert refused.returncode == 2
    assert "tier" in refused.stderr
    assert "'gold'" in refused.stderr


def test_demo_json_and_the_deprecated_speed_spelling(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("gemini-guard")
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(tmp_path)}
    env.pop("GEMINI_API_KEY", None)
    done = subprocess.run(
        [str(exe), "demo", "--prompts", "8", "--concurrency", "4", "--speed", "600", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # no report: its events' folder is gone too
    assert "--speed is deprecated; use --time-scale" in done.stderr
    payload = json.loads(done.stdout)
    assert payload["time_scale"] == 600
    guard = {run["name"]: run for run in payload["runs"]}["Guard"]
    assert guard["lost"] == 0
    assert guard["served"] == guard["prompts"] == 8
    assert set(guard) == {
        "name", "prompts", "lost", "served", "sent", "got_429", "got_5xx",
        "emulated_seconds", "minimum_seconds",
    }  # fmt: skip
