"""What the batch fault tests share: the CLI as a subprocess against a loopback emulator."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from gemini_guard.emulator import EmulatorServer

CLI = (sys.executable, "-c", "from gemini_guard.cli import main; main()")

# Requests take 2 emulated seconds; at x50 that is 40 ms of real time each.
STEADY = {
    "name": "steady",
    "seed": 1,
    "quotas": False,
    "default_tier": "tier1",
    "latency": [{"distribution": "fixed", "seconds": 2.0}],
}


def env_for(server: EmulatorServer, key: str = "test-key") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GUARD_")}
    env.pop("GOOGLE_API_KEY", None)
    env.update(GEMINI_API_KEY=key, GOOGLE_GEMINI_BASE_URL=server.base_url)
    return env


def write_input(path: Path, n: int) -> list[str]:
    ids = [f"item-{i}" for i in range(n)]
    path.write_text("".join(json.dumps({"id": i, "prompt": f"Summarise {i}."}) + "\n" for i in ids))
    return ids


def command(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        *CLI, "batch", str(source), "-o", str(out),
        "--tier", "tier1", "--concurrency", "4", *extra,
    ]  # fmt: skip


def lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def sent(server: EmulatorServer) -> int:
    """generateContent requests the emulator received."""
    return int(server.emulator.stats()["totals"]["requests"])
