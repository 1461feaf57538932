"""Every Python example in docs/ runs as written, against the emulator.

A page's ```python blocks each run alone, in a fresh directory, with the environment
a reader sets up (GOOGLE_GEMINI_BASE_URL at an emulator, GEMINI_API_KEY). Text that
is not meant to run (config files, shell, signatures) uses another fence language.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from gemini_guard.emulator import serve

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        # a block may sit indented in a list item
        blocks = re.findall(r"^( *)```python\n(.*?)^\1```", page.read_text("utf-8"), re.S | re.M)
        found += [(f"{page.stem}-{n}", dedent(code)) for n, (_, code) in enumerate(blocks, 1)]
    return found


EXAMPLES = _examples()


def test_the_pages_have_python_examples() -> None:
    # a changed fence regex that finds nothing would pass every example vacuously
    assert len(EXAMPLES) >= 10, [name for name, _ in EXAMPLES]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve("free-tier") as server:
        yield server.base_url


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[n for n, _ in EXAMPLES])
def test_the_example_runs_as_written(code: str, base_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env.update(GOOGLE_GEMINI_BASE_URL=base_url, GEMINI_API_KEY="any-key", HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
