"""The README's examples run as pasted, pointed at the emulator the way it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from gemini_guard.emulator import serve

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text("utf-8"), re.S)


def test_the_python_example_runs_against_the_emulator(tmp_path: Path) -> None:
    (code,) = _blocks("python")
    with serve("free-tier") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
        # what the README tells a new user to export
        env.update(GOOGLE_GEMINI_BASE_URL=server.base_url, GEMINI_API_KEY="any-key")
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("gemini-2.5-pro")  # the answer, then who answered


def test_the_command_line_example_runs(tmp_path: Path) -> None:
    script = next(block for block in _blocks("sh") if "gemini-guard batch" in block)
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # doctor checks the network and the key: it may fail here, and says so with exit 1
    script = script.replace("gemini-guard doctor\n", "gemini-guard doctor --help > /dev/null\n")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Rate limited" in done.stdout  # the diagnose line
    assert len((tmp_path / "answers.jsonl").read_text().splitlines()) == 60
