#!/usr/bin/env python3
"""Project tasks that need nothing but Python 3.11+ and the package registries.

    python3 dev.py test [PYTEST ARGS]   # make .venv, install, ruff, mypy, pytest
    python3 dev.py demo                 # the main job, offline, no API key
    python3 dev.py bench [NAME]         # run benchmarks under bench/ (installs the
                                        # `bench` extra, LiteLLM, the first time)

The virtual environment is reinstalled only when pyproject.toml changes, so a
second `test` starts in seconds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _exe(name: str) -> str:
    return str(BIN / (f"{name}.exe" if os.name == "nt" else name))


def _run(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    code = subprocess.call(cmd, cwd=ROOT)
    if code:
        sys.exit(code)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older Python
        sys.exit(f"gemini-guard needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not Path(_exe("python")).exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".installed-from"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        _run(_exe("python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(_exe("python"), "-m", "pip", "install", "--quiet", "-e", ".[dev]")
        stamp.write_text(digest)


def test(args: list[str]) -> None:
    ensure_venv()
    # Python sources only: ruff would also reformat the examples inside docs/*.md.
    sources = [p for p in ("src", "tests", "bench", "dev.py") if (ROOT / p).exists()]
    _run(_exe("ruff"), "check", *sources)
    _run(_exe("ruff"), "format", "--check", *sources)
    _run(_exe("mypy"), *sources)
    _run(_exe("pytest"), *args)


def demo(args: list[str]) -> None:
    ensure_venv()
    _run(_exe("gemini-guard"), "demo", *args)


def bench(args: list[str]) -> None:
    ensure_venv()
    # The peers a benchmark measures the Guard against (the `bench` extra: LiteLLM and
    # its proxy server; the `dev` extra has LiteLLM without the proxy's dependencies).
    probe = (
        "import importlib.util as u, sys; "
        "sys.exit(u.find_spec('litellm') is None or u.find_spec('apscheduler') is None)"
    )
    if subprocess.call([_exe("python"), "-c", probe], cwd=ROOT):
        _run(_exe("python"), "-m", "pip", "install", "--quiet", "-e", ".[dev,bench]")
    _run(_exe("python"), "-m", "bench", *args)


TASKS = {"test": test, "demo": demo, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(TASKS)}}} [ARGS...]")
    TASKS[sys.argv[1]](sys.argv[2:])
