"""`gemini-guard batch` as a real subprocess against the emulator on loopback:
kill -9 at random moments and resume, SIGINT, plan."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import EmulatorServer, serve

CLI = (sys.executable, "-c", "from gemini_guard.cli import main; main()")

# Requests take 2 emulated seconds; at x50 that is 40 ms of real time each.
SCENARIO = {
    "name": "steady",
    "seed": 1,
    "quotas": False,
    "default_tier": "tier1",
    "latency": [{"distribution": "fixed", "seconds": 2.0}],
}


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serve(SCENARIO, clock=ScaledClock(50)) as server:
        yield server


def _env(server: EmulatorServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GUARD_")}
    env.pop("GOOGLE_API_KEY", None)
    env.update(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=server.base_url)
    return env


def _input(path: Path, n: int) -> list[str]:
    ids = [f"item-{i}" for i in range(n)]
    path.write_text("".join(json.dumps({"id": i, "prompt": f"Summarise {i}."}) + "\n" for i in ids))
    return ids


def _command(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        *CLI, "batch", str(source), "-o", str(out),
        "--tier", "tier1", "--concurrency", "4", *extra,
    ]  # fmt: skip


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    # Enough work that 20 kills come before the end even on a fast, idle machine (a
    # run can answer about 200 requests between its start and a late kill), at a tier
    # whose minute holds it all: each restart starts a fresh in-process ledger.
    ids = _input(source, 2400)
    tier = ("--tier", "tier3")
    rng = random.Random(20260101)
    kills = 0
    for round_ in range(40):
        before = out.stat().st_size if out.exists() else 0
        proc = subprocess.Popen(
            _command(source, out, "--concurrency", "8", *tier),
            env=_env(emulator),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if round_ % 2:
            # Any moment: start-up, repair, or mid-run.
            deadline = time.monotonic() + rng.uniform(0.2, 1.6)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
        else:
            # While results stream in: between a journal commit and its line, often.
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                if out.exists() and out.stat().st_size > before:
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.12))
        if proc.poll() is not None:
            break  # finished on its own before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if kills >= 20:
            break
    assert kills >= 20
    final = subprocess.run(
        _command(source, out, *tier),
        env=_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    rows = _lines(out)
    seen = [row["id"] for row in rows]
    assert len(seen) == len(set(seen)), "an id appears twice in the output"
    assert sorted(seen) == sorted(ids), "an input id has no output line"
    assert all(row["ok"] and row["text"] for row in rows)
    assert all(row["model"] == "gemini-2.5-flash" and row["attempts"] == 1 for row in rows)


def test_sigint_stops_gracefully_and_the_same_command_resumes(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _input(source, 200)
    proc = subprocess.Popen(
        _command(source, out), env=_env(emulator), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not (out.exists() and out.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "stopping: no new requests" in err
    assert "resume with the same command" in err
    partial = _lines(out)
    assert 0 < len(partial) < len(ids)
    resumed = subprocess.run(
        _command(source, out), env=_env(emulator), capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"({len(partial)} done, 0 failed before)" in resumed.stderr
    seen = [row["id"] for row in _lines(out)]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(ids)


def test_failures_are_lines_with_a_diagnosis_and_retry_failed_reruns_them(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        '{"id": "good", "prompt": "hi"}\n'
        '{"id": "bad", "prompt": "hi", "config": {"temprature": 1}}\n'
        '{"id": "bad-range", "prompt": "hi", "config": {"temperature": 5}}\n'
        "oops\n"
    )
    first = subprocess.run(
        _command(source, out), env=_env(emulator), capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 1, first.stderr
    rows = {row["id"]: row for row in _lines(out)}
    assert rows["good"]["ok"] is True
    assert rows["bad"]["ok"] is False
    error = rows["bad"]["error"]
    assert isinstance(error, dict)
    assert error["category"]
    assert error["message"]
    assert rows["bad-range"]["ok"] is False
    assert "test-key" not in out.read_text()
    problems = (tmp_path / "out.jsonl.errors.jsonl").read_text()
    assert '"line": 4' in problems
    again = subprocess.run(
        _command(source, out, "--retry-failed"),
        env=_env(emulator), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "2 to run of 3" in again.stderr
    assert sorted(row["id"] for row in _lines(out)) == ["bad", "bad-range", "good"]


def test_plan_prints_tokens_time_cost_and_smallest_tier(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    # 1,000 prompts of 40 characters (10 tokens): 10,000 input tokens; 500 output each.
    # gemini-2.5-pro: 10,000 x 1.25/1M + 500,000 x 10/1M = $5.0125; Batch API $2.5063.
    source.write_text(
        "".join(json.dumps({"id": i, "prompt": "z" * 40}) + "\n" for i in range(1000))
    )
    run = subprocess.run(
        [*CLI, "plan", str(source),
         "--model", "gemini-2.5-pro", "--tier", "free"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "10,000 input" in run.stdout
    assert "10 quota days (rpd binds" in run.stdout
    assert "$5.0125 at standard prices, $2.5063 through the Batch API" in run.stdout
    assert "smallest tier that finishes within a day: tier1" in run.stdout


def _plan(source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GUARD_")}
    return subprocess.run(
        [*CLI, "plan", str(source), "--model", "gemini-2.5-pro", "--tier", "free", *extra],
        capture_output=True, text=True, timeout=60, env=env, cwd=source.parent,
    )  # fmt: skip


def test_plan_takes_prices_from_the_config(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "prompt": "z" * 40}) + "\n" for i in range(1000))
    )
    config = tmp_path / "prices.toml"
    config.write_text('[prices."gemini-2.5-pro"]\ninput = 2.0\noutput = 4.0\n')
    run = _plan(source, "--config", str(config))
    assert run.returncode == 0, run.stderr
    # 10,000 x 2/1M + 500,000 x 4/1M = $2.0200; half through the Batch API.
    assert "$2.0200 at standard prices, $1.0100 through the Batch API" in run.stdout
    assert "[input $2.0/1M, output $4.0/1M, from the config]" in run.stdout

    config.write_text('[prices."gemini-2.5-pro"]\ninput = -1\noutput = 4.0\n')
    bad = _plan(source, "--config", str(config))
    assert bad.returncode == 2  # a bad --config is a usage error, as in every command
    assert "prices.gemini-2.5-pro.input (got -1)" in bad.stderr
    assert "greater than or equal to 0" in bad.stderr


def test_a_batch_api_job_stuck_past_its_deadline_is_answered_directly(tmp_path: Path) -> None:
    # The shipped batch-stuck scenario holds the job PENDING for 48 hours; at x7200 the
    # one-hour deadline passes in half a real second.
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _input(source, 5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GUARD_")}
    run = subprocess.run(
        [
            *CLI, "batch", str(source), "-o", str(out), "--mode", "batch-api",
            "--emulate", "batch-stuck", "--time-scale", "7200", "--batch-api-deadline", "1h",
            "--lang", "en",
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "cancelling it" in run.stderr
    assert "5 requests run as direct calls" in run.stderr
    rows = _lines(out)
    assert sorted(row["id"] for row in rows) == sorted(ids)
    assert all(row["ok"] for row in rows)


def test_a_bad_batch_api_deadline_is_one_clear_line(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _input(source, 1)
    run = subprocess.run(
        [
            *CLI, "batch", str(source), "-o", str(out),
            "--batch-api-deadline", "soon", "--lang", "en",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "'soon': give a duration such as 24h, 90m, 45s or 2d, or none" in run.stderr
    assert not out.exists()
