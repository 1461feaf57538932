"""The docs site builds with no warning, and the error reference matches the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gemini_guard.cli._errors_page import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_error_reference_is_generated_from_the_diagnosis_data() -> None:
    committed = (ROOT / "docs" / "errors.md").read_text("utf-8")
    assert committed == render(), (
        "docs/errors.md is out of date: python -m gemini_guard.cli._errors_page > docs/errors.md"
    )
    for words in ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "每日请求配额", "gemini-guard 的处理"):
        assert words in committed


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index.html", "errors/index.html", "cli/index.html"):
        assert (tmp_path / "site" / page).is_file()
