"""`gemini-guard report`, end to end: a scripted bad day through a Guard to the emulator,
its events written by a JsonlSink, the report built by the command and opened in
headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Scenario, serve
from gemini_guard.errors import CallFailed
from gemini_guard.guard import Guard
from gemini_guard.telemetry import JsonlSink
from tests.support.binaries import require_binary
from tests.support.chromium import visit
from tests.support.sdk_clients import close_emulator_clients, emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
KEY = "AIzaSyREPORTTESTKEY-0123456789abcdefghij"
CALLS = 80
EXE = Path(sys.executable).with_name("gemini-guard")


@pytest.fixture(scope="module")
def bad_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """(events file, what the emulator saw: requests and 503s of pro, requests of flash)."""
    events = tmp_path_factory.mktemp("report") / "events.jsonl"
    clock = FakeClock()
    storm = Scenario(
        name="storm",
        seed=11,
        default_tier="tier1",
        faults=(
            {"kind": "overloaded", "models": (PRO,), "probability": 0.8, "start": 120, "end": 300},
        ),  # type: ignore[arg-type]
    )
    with serve(storm, clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[PRO, FLASH],
            clock=clock,
            hooks=[JsonlSink(events)],
            alerts=True,
            log=False,
            seed=2,
        )
        for i in range(CALLS):
            with contextlib.suppress(CallFailed):
                guard.models.generate_content(model=PRO, contents=f"summarise note {i}")
            clock.advance(6.0)
        guard.close()
        stats = httpx.get(f"{server.base_url}/_emulator/stats").json()["projects"]
    import asyncio

    asyncio.run(close_emulator_clients())
    cells = list(stats.values())
    seen = {
        "pro_requests": sum(c.get(PRO, {}).get("requests", 0) for c in cells),
        "pro_503": sum(c.get(PRO, {}).get("rejected", {}).get("overloaded", 0) for c in cells),
        "flash_requests": sum(c.get(FLASH, {}).get("requests", 0) for c in cells),
    }
    return events, seen


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "report", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )


def fallbacks_answered(events: Path) -> int:
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    moved = {
        r["call_id"] for r in rows if r["event"] == "fallback_taken" and r["to_model"] == FLASH
    }
    served = {r["call_id"] for r in rows if r["event"] == "call_succeeded" and r["model"] == FLASH}
    return len(moved & served)


def test_text_summary_tells_the_story(bad_day: tuple[Path, dict[str, int]]) -> None:
    events, _seen = bad_day
    done = report(str(events), "--format", "text")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{PRO} returned 503 to" in out
    assert f"{fallbacks_answered(events)} calls fell back to {FLASH}" in out
    assert f"Nothing was lost: all {CALLS} calls succeeded." in out
    assert "alert(s)" in out
    assert "5xx_spike" in out
    assert KEY not in out


def test_the_html_report_loads_offline_with_the_runs_numbers(
    bad_day: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    chromium = require_binary("chromium", why="to render the HTML report in a real browser")
    events, seen = bad_day
    page = tmp_path / "report.html"
    done = report(str(events), "-o", str(page))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(page)
    html = page.read_text(encoding="utf-8")
    assert KEY not in html
    assert "<link" not in html
    assert " src=" not in html
    shot = tmp_path / "report.png"
    charts = "[...document.querySelectorAll('svg[data-chart]')].map(s => s.dataset.chart)"
    legend = "[...document.querySelectorAll('.legend li')].map(li => li.textContent)"
    summary = "document.querySelector('#summary').innerText"
    seen_page = visit(
        chromium,
        page,
        evaluate=("document.documentElement.dataset.ready", charts, legend, summary),
        screenshot=shot,
    )
    assert seen_page.requests == []
    assert seen_page.console_errors == []
    assert seen_page.exceptions == []
    values = seen_page.values
    assert values["document.documentElement.dataset.ready"] == "1"  # its script ran
    assert set(values[charts]) >= {
        "requests",
        "errors",
        "latency",
        "fallbacks",
        "spend",
        "breakers",
    }
    entries = values[legend]
    assert f"{PRO}: {seen['pro_requests']} requests" in " | ".join(entries)
    assert f"{FLASH}: {seen['flash_requests']} requests" in " | ".join(entries)
    assert f"overloaded: {seen['pro_503']}" in entries
    assert "Nothing was lost" in values[summary]
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("GEMINI_GUARD_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")


def test_bad_input_is_explained(tmp_path: Path) -> None:
    missing = report(str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert "no such events file" in missing.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"event": "attempt_started", "timestamp": 1}\nnot json\n')
    bad = report(str(broken), "--format", "text")
    assert bad.returncode == 2
    assert "broken.jsonl:2" in bad.stderr
    assert "not a JSON object" in bad.stderr


def test_demo_writes_the_report_of_its_run() -> None:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)
    done = subprocess.run(
        [str(EXE), "demo", "--prompts", "16", "--concurrency", "4", "--speed", "600"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("report of the Guard's run:"))
    path = Path(line.split(": ", 1)[1].strip())
    assert path.suffix == ".html"
    html = path.read_text(encoding="utf-8")
    assert 'data-chart="requests"' in html
    assert "16 calls" in html or "all 16 calls succeeded" in html
