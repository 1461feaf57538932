"""Secrets of several shapes, echoed by the server in every error field, never reach a
byte gemini-guard writes: files, stdout, stderr, logs, printed tracebacks.

Each secret is the API key of one run; the emulator's "echo" key state answers every
request with a 400 that repeats the key in its message, its details and a `key=`
parameter. The Guard (sync, async, stream, an uncaught error), `batch`, `diagnose`,
`doctor`, and every other command that can see a secret (`plan`, `quota`, `models`,
`report`, `demo`, `emulate`) then run as real subprocesses and everything they leave is
searched.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
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


EVENTS_SCRIPT = r"""
from gemini_guard import Guard

guard = Guard.from_config()  # the key from GEMINI_API_KEY
for _ in range(3):
    try:
        guard.models.generate_content(model="gemini-2.5-flash", contents="hi")
    except Exception as exc:
        print(type(exc).__name__, exc)
guard.close()
"""


def _start_emulator(tmp_path: Path, env: dict[str, str], stop: signal.Signals) -> bytes:
    """`gemini-guard emulate` with the secret in its environment, sent one request carrying
    the secret as header and as `key=`, stopped by `stop`; its stdout and stderr."""
    proc = subprocess.Popen(
        [*CLI, "emulate", "--port", "0", "--log", str(tmp_path / f"emulate-{stop.name}.log")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = b""
    try:
        while (match := re.search(rb"listening on (http://[\d.]+:\d+)", seen)) is None:
            line = proc.stdout.readline()
            assert line, f"emulate ended before listening: {seen!r}"
            seen += line
        url = match.group(1).decode()
        secret = env["GEMINI_API_KEY"]
        request = urllib.request.Request(
            f"{url}/v1beta/models/gemini-2.5-flash:generateContent?key={quote(secret, safe='')}",
            data=json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode(),
            headers={"x-goog-api-key": secret, "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                assert reply.status == 200
        except urllib.error.HTTPError as exc:  # a scenario answer is fine; the server ran
            exc.read()
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (stop, proc.returncode, err)  # stopping is a normal end
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert b"emulator stopped" in seen + out, (seen + out + err).decode(errors="replace")
    return seen + out + err


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_planted_secret_reaches_the_other_commands(
    name: str, echoing: EmulatorServer, tmp_path: Path
) -> None:
    """plan, quota (also a Redis password), models (also --refresh from a server echoing
    the key), report on the events of a Guard whose errors echoed it, demo, and emulate
    (sent the key, stopped by SIGINT and by SIGTERM)."""
    secret = SECRETS[name]
    env = env_for(echoing, key=secret)
    env["PLANTED"] = secret
    store = f"sqlite:///{tmp_path / 'state.db'}"
    env["GEMINI_GUARD_STORE"] = store
    events = tmp_path / "events.jsonl"
    runs: dict[str, bytes] = {}

    def cli(label: str, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[bytes]:
        run = subprocess.run([*CLI, *args], env=env, capture_output=True, timeout=120)
        runs[label] = run.stdout + run.stderr
        if code is not None:
            assert run.returncode == code, (label, run.stderr.decode(errors="replace"))
        return run

    script = tmp_path / "events_script.py"
    script.write_text(EVENTS_SCRIPT)
    guard = subprocess.run(
        [sys.executable, str(script)],
        env={
            **env,
            "GEMINI_GUARD_MODELS": "gemini-2.5-flash",
            "GEMINI_GUARD_TIER": "tier1",
            "GEMINI_GUARD_TELEMETRY__JSONL": str(events),
        },
        capture_output=True,
        timeout=120,
    )
    runs["guard"] = guard.stdout + guard.stderr
    assert guard.returncode == 0, guard.stderr.decode(errors="replace")
    assert guard.stdout.count(b"\n") == 3  # three calls, each failed with the echoing 400
    assert events.stat().st_size > 0

    source = tmp_path / "in.jsonl"
    write_input(source, 3)
    assert b"3 requests" in cli("plan", "plan", str(source)).stdout
    cli("plan --json", "plan", str(source), "--json")
    cli("quota", "quota", "--tier", "tier1")
    cli("quota --json", "quota", "--json")
    # A Redis password is a secret too: an unreachable store with it in the URL.
    port = _free_port()
    bad_redis = cli(
        "quota redis", "quota", "--store", f"redis://:{quote(secret, safe='')}@127.0.0.1:{port}/0",
        code=None,
    )  # fmt: skip
    assert bad_redis.returncode != 0
    assert b"127.0.0.1" in bad_redis.stderr  # it said which store failed
    cli("models", "models")
    table = str(tmp_path / "models.toml")
    refresh = cli("models --refresh", "models", "--refresh", "--output", table, code=None)
    assert refresh.returncode != 0  # the echoing 400
    assert b"models.list failed" in refresh.stderr
    cli("report html", "report", str(events), "-o", str(tmp_path / "report.html"))
    text = cli("report text", "report", str(events), "--format", "text")
    assert text.stdout.strip()
    demo = cli("demo", "demo", "--prompts", "5", "--concurrency", "4", "--time-scale", "600")
    assert b"Guard" in demo.stdout
    runs["emulate SIGINT"] = _start_emulator(tmp_path, env, signal.SIGINT)
    runs["emulate SIGTERM"] = _start_emulator(tmp_path, env, signal.SIGTERM)

    leaks: list[str] = []
    for label, output in runs.items():
        leaks += _leaks(secret, f"{label} output", output)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != script:
            leaks += _leaks(secret, str(path.relative_to(tmp_path)), path.read_bytes())
    assert not leaks, "\n".join(leaks)
    assert (tmp_path / "report.html").stat().st_size > 0
    assert (tmp_path / "emulate-SIGINT.log").read_bytes().count(b"\n") == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
