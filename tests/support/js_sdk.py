"""The official JavaScript SDK (@google/genai from npm), installed once per checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
NODE_CACHE = ROOT / ".venv" / "node-cache"  # installed once, reused across runs

__all__ = ["NODE_CACHE", "install_js_sdk"]


def install_js_sdk() -> Path:
    """The folder whose node_modules holds @google/genai (installed on first use)."""
    npm = require_binary("npm", why="to install the official @google/genai SDK")
    package = NODE_CACHE / "node_modules" / "@google" / "genai" / "package.json"
    if not package.exists():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_CACHE),
                "@google/genai",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return NODE_CACHE
