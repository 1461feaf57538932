"""`gemini-guard emulate` as a real process, used by the real SDK."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from google.genai import errors

from tests.integration.emulator.conftest import sdk_client

CLI = str(Path(sys.executable).with_name("gemini-guard"))


def _read_instructions(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> tuple[str, str]:
    """The base URL and the whole start-up text (it ends with the Ctrl-C hint)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    seen = b""
    while b"Ctrl-C" not in seen:
        if not selector.select(timeout):
            raise AssertionError(f"no instructions within {timeout}s; output so far:\n{seen!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"the emulator exited early:\n{seen!r}")
        seen += chunk
    selector.close()
    text = seen.decode()
    match = re.search(r"listening on (http://\S+)", text)
    assert match, text
    return match.group(1), text


def test_emulate_serves_until_interrupted(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    scenario = tmp_path / "tiny.toml"
    scenario.write_text('[limits."gemini-2.5-flash".free]\nrpm = 1\n')
    command = [CLI, "emulate", "--port", "0", "--scenario", str(scenario), "--time-scale", "60"]
    with subprocess.Popen(
        [*command, "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            base_url, output = _read_instructions(proc)
            assert f'HttpOptions(base_url="{base_url}")' in output
            assert f"GOOGLE_GEMINI_BASE_URL={base_url}" in output
            assert "baseUrl" in output  # the JavaScript SDK's option
            client = sdk_client(base_url)
            assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
            with pytest.raises(errors.ClientError) as info:
                client.models.generate_content(model="gemini-2.5-flash", contents="hi")
            assert info.value.code == 429
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            finally:
                if proc.poll() is None:
                    proc.kill()
        stderr = proc.stderr.read() if proc.stderr else b""
    assert proc.returncode == 0, stderr.decode()
    lines = log.read_text().splitlines()
    assert len(lines) >= 1
    assert '"status": 200' in lines[0]


def test_emulate_rejects_a_malformed_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[faults]]\nkind = "internal"\nprobability = 2\n')
    result = subprocess.run(
        [CLI, "emulate", "--port", "0", "--scenario", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "line 3" in result.stderr
    assert "faults[0].probability" in result.stderr
