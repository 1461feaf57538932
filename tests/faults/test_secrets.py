"""Secrets of several shapes, echoed by the server in every error field, never reach a
byte gemini-guard writes: files, stdout, stderr, logs, printed tracebacks.

Each secret is the API key of one run; the emulator's "echo" key state answers every
request with a 400 that repeats the key in its message, its details and a `key=`
parameter. The Guard (sync, async, stream, an uncaught error), `batch`, `diagnose` and
`doctor` then run as real subprocesses and everything they leave is searched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import EmulatorServer, serve
from tests.faults._batch import CLI, env_for, write_input

SECRETS = {
    "google-key": "AIzaSyD3-planted-Fake_key0123456789abcde",
    "gateway-token": "gw7Qp2rT9xKv4LmZ8sWn3YbH6cJd1FeA5gUo0iRt",  # 40 characters
    "jwt-bearer": (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwbGFudGVkIn0."
        "Zm9vYmFyYmF6cXV4cXV1eHBsYW50ZWRzZWNyZXQ"
    ),
    "short-weird": "k$9!zQ~p",
}

GUARD_SCRIPT = r"""
import asyncio, logging, os, sys
from gemini_guard import Guard

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
log = logging.getLogger("app")
guard = Guard(api_key=os.environ["PLANTED"], models=["gemini-2.5-flash"])
try:
    guard.models.generate_content(model="gemini-2.5-flash", contents="hi")
except Exception as exc:
    log.exception("sync call failed")
    print(exc, exc.diagnosis.message, exc.diagnosis.explain(), repr(exc.__cause__))

async def run_async():
    try:
        await guard.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    except Exception:
        log.exception("async call failed")

asyncio.run(run_async())
try:
    for _ in guard.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"):
        pass
except Exception:
    log.exception("stream failed")
guard.models.generate_content(model="gemini-2.5-flash", contents="hi")  # uncaught
"""


@pytest.fixture
def echoing() -> Iterator[EmulatorServer]:
    scenario = {
        "name": "echo",
        "quotas": False,
        "default_tier": "tier1",
        "keys": {
            secret: {"project": f"p-{name}", "tier": "tier1", "state": "echo"}
            for name, secret in SECRETS.items()
        },
    }
    with serve(scenario, clock=ScaledClock(50)) as server:
        yield server


def _forms(secret: str) -> set[bytes]:
    return {secret.encode(), quote(secret, safe="").encode(), json.dumps(secret)[1:-1].encode()}


def _leaks(secret: str, where: str, data: bytes) -> list[str]:
    return [f"{where} holds {form!r}" for form in _forms(secret) if form in data]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_planted_secret_reaches_any_output(
    name: str, echoing: EmulatorServer, tmp_path: Path
) -> None:
    secret = SECRETS[name]
    env = env_for(echoing, key=secret)
    env["PLANTED"] = secret
    runs: dict[str, subprocess.CompletedProcess[bytes]] = {}

    script = tmp_path / "guard_script.py"
    script.write_text(GUARD_SCRIPT)
    guard_env = {**env, "GEMINI_API_KEY": ""}  # the Guard learns the key from api_key=
    runs["guard"] = subprocess.run(
        [sys.executable, str(script)], env=guard_env, capture_output=True, timeout=120
    )
    assert b"Traceback" in runs["guard"].stderr  # the uncaught error printed its traceback
    assert b"sync call failed" in runs["guard"].stderr
    assert b"API_KEY_INVALID" in runs["guard"].stderr or b"INVALID_ARGUMENT" in runs["guard"].stderr

    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 5)
    runs["batch"] = subprocess.run(
        [*CLI, "batch", str(source), "-o", str(out), "--tier", "tier1", "--concurrency", "2"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    assert not any(row["ok"] for row in rows)  # the echoing 400s

    body = json.dumps(
        {"error": {"code": 400, "message": f"API key not valid: {secret}", "status": "X"}}
    )
    (tmp_path / "error.json").write_text(body)
    runs["diagnose"] = subprocess.run(
        [*CLI, "diagnose", str(tmp_path / "error.json")], env=env, capture_output=True, timeout=60
    )
    runs["doctor"] = subprocess.run(
        [
            *CLI, "doctor", "--base-url", echoing.base_url,
            "--status-url", echoing.base_url + "/no-status", "--timeout", "5",
            "--model", "gemini-2.5-flash",
        ],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert runs["doctor"].returncode != 0  # the key check failed, as it should

    leaks: list[str] = []
    for command, run in runs.items():
        leaks += _leaks(secret, f"{command} stdout", run.stdout)
        leaks += _leaks(secret, f"{command} stderr", run.stderr)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != script and path != tmp_path / "error.json":
            leaks += _leaks(secret, str(path.relative_to(tmp_path)), path.read_bytes())
    assert not leaks, "\n".join(leaks)
