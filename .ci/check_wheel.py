#!/usr/bin/env python3
"""Build the wheel and install it the way a user would, in fresh virtual environments.

1. core only: `import gemini_guard` works and loads none of the extras' modules;
   `gemini_guard.Guard` (the library's entry point) does not either.
2. `[all]`: `gemini-guard --version` and `python -m gemini_guard --help` run.

Uses pip's cache; every step has a time limit so a stuck download fails the run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 600

CHECK_CORE = """
import sys
import gemini_guard
from gemini_guard._extras import EXTRA_MODULES
gemini_guard.Guard, gemini_guard.diagnose, gemini_guard.QuotaLimiter
loaded = sorted(
    {name.partition(".")[0] for name in sys.modules}
    & {m for mods in EXTRA_MODULES.values() for m in mods}
)
assert not loaded, f"import gemini_guard loaded optional modules: {loaded}"
assert gemini_guard.__version__ != "0+unknown", gemini_guard.__version__
print("core install:", gemini_guard.__version__, "- no optional module imported")
"""


def run(*cmd: str | Path) -> str:
    print("+", " ".join(map(str, cmd)), flush=True)
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
    )
    if done.returncode:
        sys.exit(f"failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def fresh_venv(where: Path) -> Path:
    venv.create(where, with_pip=True)
    return where / ("Scripts" if sys.platform == "win32" else "bin")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gg-wheel-") as tmp:
        dist = Path(tmp) / "dist"
        # A venv of its own to build in: the system Python may come without pip.
        build = fresh_venv(Path(tmp) / "build")
        run(build / "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, ROOT)
        (wheel,) = dist.glob("gemini_guard-*.whl")
        core = fresh_venv(Path(tmp) / "core")
        run(core / "python", "-m", "pip", "install", "--quiet", wheel)
        print(run(core / "python", "-c", CHECK_CORE), end="")
        missing = subprocess.run(
            [str(core / "python"), "-m", "gemini_guard", "--help"],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        if missing.returncode != 1 or "gemini-guard[cli]" not in missing.stderr:
            sys.exit(f"the CLI without [cli] should name the extra:\n{missing.stderr}")
        print("core install, CLI:", missing.stderr.strip())
        full = fresh_venv(Path(tmp) / "all")
        run(full / "python", "-m", "pip", "install", "--quiet", f"{wheel}[all]")
        print(run(full / "gemini-guard", "--version"), end="")
        helped = run(full / "python", "-m", "gemini_guard", "--help")
        assert "Exit codes" in helped, helped
        print("[all] install: gemini-guard --version and python -m gemini_guard --help work")


if __name__ == "__main__":
    main()
