"""`gemini-guard serve` as a real process: clients through it, SIGTERM with requests in
flight (none lost), and configurations it refuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import types

from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import EmulatorServer, serve

CLI = (sys.executable, "-c", "from gemini_guard.cli import main; main()")
TOKEN = "gg-serve-test-token-1234"
GOOGLE_KEY = "AIzaSyServeTestUpstream-not-shown-999"

# Each answer takes 40 emulated seconds: 0.5 s of real time at x80, long enough to
# still be in flight when the gateway is told to stop.
SCENARIO = {
    "name": "slow",
    "quotas": False,
    "default_tier": "tier1",
    "latency": [{"distribution": "fixed", "seconds": 40.0}],
}


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serve(SCENARIO, clock=ScaledClock(80)) as server:
        yield server


def _config(tmp_path: Path, base_url: str, store: str = "memory://") -> Path:
    path = tmp_path / "gemini-guard.toml"
    path.write_text(
        f'base_url = "{base_url}"\n'
        f'store = "{store}"\n'
        'models = ["gemini-2.5-flash"]\n'
        "[[projects]]\n"
        'name = "main"\n'
        'api_key_env = "SERVE_TEST_GOOGLE_KEY"\n'
        "[telemetry]\nlog = false\n"
        "[[gateway.tokens]]\n"
        'name = "app"\n'
        'token_env = "SERVE_TEST_TOKEN"\n'
    )
    return path


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "SERVE_TEST_GOOGLE_KEY": GOOGLE_KEY,
        "SERVE_TEST_TOKEN": TOKEN,
        "LANG": "C.UTF-8",
    }


def _start(config: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*CLI, "serve", "--config", str(config), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if "listening on" not in first:
        process.kill()
        raise AssertionError(f"no listening line: {first!r} {process.stderr.read()}")  # type: ignore[union-attr]
    return process, first.rsplit(" ", 1)[-1].strip()


def test_clients_go_through_and_sigterm_lets_requests_in_flight_finish(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    process, base_url = _start(_config(tmp_path, emulator.base_url), "--grace", "20")
    try:
        client = genai.Client(api_key=TOKEN, http_options=types.HttpOptions(base_url=base_url))
        first = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        results: list[int] = []

        def in_flight() -> None:
            reply = httpx.post(
                f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "slow"}]}]},
                headers={"x-goog-api-key": TOKEN},
                timeout=30,
            )
            results.append(reply.status_code)

        workers = [threading.Thread(target=in_flight) for _ in range(3)]
        for worker in workers:
            worker.start()
        # Wait until the emulator has the three requests, then stop the gateway.
        deadline = 200
        while emulator.emulator.stats()["totals"]["requests"] < 4 and deadline:
            threading.Event().wait(0.02)
            deadline -= 1
        process.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.join(timeout=30)
        out, err = process.communicate(timeout=30)
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert first.text
    assert results == [200, 200, 200]
    assert process.returncode == 0, err
    assert "gateway stopped" in out
    # the access log: one JSON line per request, the token's name, never the token
    access = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(access) == 4
    assert {entry["caller"] for entry in access} == {"app"}
    assert {entry["status"] for entry in access} == {200}
    assert GOOGLE_KEY not in out + err
    assert TOKEN not in out + err


def test_several_workers_need_a_shared_store(emulator: EmulatorServer, tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "serve", "--config", str(_config(tmp_path, emulator.base_url)), "--workers", "2"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 1
    assert "sqlite:///" in done.stderr


def test_a_config_without_tokens_is_refused_before_listening(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    path = tmp_path / "no-tokens.toml"
    path.write_text(f'base_url = "{emulator.base_url}"\n')
    done = subprocess.run(
        [*CLI, "serve", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 1
    assert "[[gateway.tokens]]" in done.stderr
    assert "listening" not in done.stdout
    assert "Traceback" not in done.stderr


def test_workers_share_quota_state_and_one_metrics_view(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, emulator.base_url, store=f"sqlite:///{tmp_path}/state.db")
    config.write_text(
        config.read_text().replace(
            "[telemetry]\nlog = false\n", "[telemetry]\nlog = false\nmetrics = true\n"
        )
    )
    process, base_url = _start(config, "--workers", "2")
    try:
        with httpx.Client(headers={"x-goog-api-key": TOKEN}, timeout=30) as http:
            url = f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent"
            body = {"contents": [{"parts": [{"text": "hi"}]}]}
            statuses = [http.post(url, json=body).status_code for _ in range(6)]
            scrapes = [http.get(f"{base_url}/metrics").text for _ in range(4)]
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert statuses == [200] * 6
    # Each worker writes its own access lines, all of them by the time it has stopped.
    access = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [entry["status"] for entry in access] == [200] * 6
    assert {entry["caller"] for entry in access} == {"app"}
    line = 'gemini_guard_requests_total{category="none",model="gemini-2.5-flash",outcome="success"}'
    # Whichever worker answers the scrape, it counts the requests of both.
    for text in scrapes:
        counted = [row for row in text.splitlines() if row.startswith(line)]
        assert counted, text[:2000]
        assert float(counted[0].rsplit(" ", 1)[1]) == 6.0
