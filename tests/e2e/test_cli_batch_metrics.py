"""`gemini-guard batch --metrics-port`: the run's metrics scraped while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gemini_guard.clock import ScaledClock, SystemClock
from gemini_guard.emulator import EmulatorServer, serve

CLI = (sys.executable, "-c", "from gemini_guard.cli import main; main()")
ITEMS = 120
# 2 emulated seconds a request at x20: 100 ms real; 120 items, 4 at a time: about 3 s.
SCENARIO = {
    "name": "steady",
    "seed": 1,
    "quotas": False,
    "default_tier": "tier1",
    "latency": [{"distribution": "fixed", "seconds": 2.0}],
}


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serve(SCENARIO, clock=ScaledClock(20)) as server:
        yield server


def attempts(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gemini_guard_attempts_total"
    )


@pytest.mark.slow
def test_metrics_are_served_while_the_batch_runs(tmp_path: Path, emulator: EmulatorServer) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"i{i}", "prompt": f"Summarise {i}."}) + "\n" for i in range(ITEMS)
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GUARD_")}
    env.pop("GOOGLE_API_KEY", None)
    env.update(GEMINI_API_KEY="test-key-for-metrics", GOOGLE_GEMINI_BASE_URL=emulator.base_url)
    process = subprocess.Popen(
        [
            *CLI, "batch", str(source), "-o", str(out), "--tier", "tier1",
            "--concurrency", "4", "--metrics-port", "0",
        ],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            if line.startswith("metrics: "):
                url = line.split(" ", 1)[1].strip()
                break
        assert url is not None, "batch did not print where its metrics are"
        seen: list[float] = []
        clock = SystemClock()
        while process.poll() is None and len(seen) < 50:
            try:
                text = httpx.get(url, timeout=5).text
            except httpx.TransportError:
                break  # the run ended between the poll and the scrape
            seen.append(attempts(text))
            clock.sleep(0.05)
        process.stderr.read()
    finally:
        process.wait(60)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == 0
    assert seen, "no scrape landed while the batch ran"
    assert seen == sorted(seen)  # counters only go up
    assert 0 < max(seen) <= ITEMS
    assert "test-key-for-metrics" not in text
