"""`gemini-guard demo`, the README's main job, end to end on a small workload."""

from __future__ import annotations

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


def test_demo_shows_the_guard_losing_nothing_where_the_guide_loses() -> None:
    exe = Path(sys.executable).with_name("gemini-guard")
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)  # the demo needs no key
    done = subprocess.run(
        [str(exe), "demo", "--prompts", "24", "--concurrency", "4", "--speed", "600"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    guard = _row(done.stdout, "Guard")
    guide = _row(done.stdout, "guide's loop")
    # columns: name, succeeded, lost, sent, 429s, 5xx, time, minimum
    assert guard[1] == "24/24"
    assert guard[2] == "0"
    assert int(guide[2]) + int(guide[1].split("/")[0]) == 24
    # The Guard honours the server's delays: fewer 429s than the guide's blind loop.
    assert int(guard[4]) < int(guide[4])
