"""Each command's --json has exactly the fields docs/cli.md documents for it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.quota import QuotaLimiter

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("gemini-guard")


def documented(command: str) -> Any:
    text = (ROOT / "docs" / "cli.md").read_text("utf-8")
    section = re.search(rf"### `{re.escape(command)}`\n(.*?)(?=\n### |\n## |\Z)", text, re.S)
    assert section is not None, f"docs/cli.md documents no `{command}`"
    block = re.search(r"```json\n(.*?)```", section.group(1), re.S)
    assert block is not None
    return json.loads(block.group(1))


# Mappings whose keys are data (a model or a failure category -> a count), not fields.
OPEN = ("batch.served_by", "batch.failures")


def same_shape(doc: Any, real: Any, where: str) -> None:
    """The same keys at every level the docs spell out ("..." keys stand for "as above")."""
    if isinstance(doc, dict) and isinstance(real, dict) and "..." not in doc:
        if where in OPEN:
            return
        if set(doc) != set(real):
            raise AssertionError(f"{where}: documented {sorted(doc)}, printed {sorted(real)}")
        for key in set(doc) & set(real):
            same_shape(doc[key], real[key], f"{where}.{key}")
    elif isinstance(doc, list) and isinstance(real, list) and doc and real:
        same_shape(doc[0], real[0], f"{where}[0]")


def cli(*args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=180, env=env, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(4)))
    return path


def test_diagnose_doctor_and_emulate(tmp_path: Path) -> None:
    body = (
        "429 RESOURCE_EXHAUSTED Quota exceeded for metric: generativelanguage.googleapis.com/"
        "generate_content_free_tier_requests, limit: 10, model: gemini-2.5-flash. "
        "Please retry in 41.2s."
    )
    same_shape(documented("diagnose --json"), cli("diagnose", "--json", body), "diagnose")
    nowhere = "http://127.0.0.1:9"
    doctor = cli("doctor", "--json", "--no-probe", "--timeout", "0.2",
                 "--base-url", nowhere, "--status-url", nowhere + "/")  # fmt: skip
    same_shape(documented("doctor --json"), doctor, "doctor")
    listed = cli("emulate", "--list-scenarios", "--json")
    same_shape(documented("emulate --list-scenarios --json"), listed, "emulate")


def test_demo_batch_and_plan(prompts: Path, tmp_path: Path) -> None:
    demo = cli("demo", "--json", "--prompts", "4", "--concurrency", "2", "--time-scale", "600")
    same_shape(documented("demo --json"), demo, "demo")
    out = tmp_path / "out.jsonl"
    batch = cli("batch", str(prompts), "-o", str(out), "--emulate", "healthy", "--json")
    same_shape(documented("batch --json"), batch, "batch")
    same_shape(documented("plan --json"), cli("plan", str(prompts), "--json"), "plan")


def test_quota(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    gate = QuotaLimiter(store=url, clock=FakeClock(start=time.time()), tier="free")
    gate.settle(gate.reserve(project="p", model="gemini-2.5-flash", tokens=3), sent=True)
    gate.close()
    report = cli("quota", "--store", url, "--tier", "free", "--json")
    assert report["ledgers"]
    same_shape(documented("quota --json"), report, "quota")
