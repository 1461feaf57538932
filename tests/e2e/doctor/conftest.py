"""`gemini-guard doctor` as a user runs it, against the emulator on loopback.

The cases the doctor must get right run as real subprocesses, all launched at once
(each pays for importing the SDK, so running them side by side keeps the suite fast);
the finer cases run the same command in-process through click's test runner.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gemini_guard.cli import main
from gemini_guard.emulator import EmulatorServer, serve


def _key(name: str) -> str:
    """A key of the real format (AIza + 35 characters), recognisable in a failure."""
    return "AIza" + (name + "0" * 35)[:35]


# Keys of the emulated world: each in its own project, each in a known condition.
GOOD_KEY = _key("G00dKeyForTheDoctorTests")
INVALID_KEY = _key("InvalidKeyForTheDoctorTests")
REGION_KEY = _key("RegionBlockedKeyForTheDoctorTests")
LEAKED_KEY = _key("LeakedKeyForTheDoctorTests")
CREDIT_KEY = _key("CreditDepletedKeyForTheDoctorTests")
ALL_KEYS = (GOOD_KEY, INVALID_KEY, REGION_KEY, LEAKED_KEY, CREDIT_KEY)
OVERLOADED_MODEL = "gemini-2.5-pro"
NO_QUOTA_MODEL = "gemini-2.5-flash-lite"  # rpm 0 on the free tier: every call is a 429
SHORT_LOCATION = "europe-west4"

SCENARIO: dict[str, Any] = {
    "name": "doctor",
    "accept_unknown_keys": False,
    "keys": {
        GOOD_KEY: {"project": "good"},
        INVALID_KEY: {"project": "invalid", "state": "invalid"},
        REGION_KEY: {"project": "region", "state": "region_blocked"},
        LEAKED_KEY: {"project": "leaked", "state": "leaked"},
        CREDIT_KEY: {"project": "credit", "state": "credit_depleted"},
    },
    "limits": {NO_QUOTA_MODEL: {"free": {"rpm": 0}}},
    "faults": [{"kind": "overloaded", "models": [OVERLOADED_MODEL]}],
    # Vertex AI: europe-west4 has no shared capacity left, for every model and project.
    "vertex": {"locations": {SHORT_LOCATION: {"rpm": 0}}},
}

# name -> (arguments, key environment): the runs done as real subprocesses.
SUBPROCESS_CASES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "good": (("--json", "--model", "gemini-2.5-flash"), {"GEMINI_API_KEY": GOOD_KEY}),
    "invalid": (("--json",), {"GEMINI_API_KEY": INVALID_KEY}),
    "region": (("--json",), {"GEMINI_API_KEY": REGION_KEY}),
    "leaked": (("--json",), {"GEMINI_API_KEY": LEAKED_KEY}),
    "unknown_model": (
        ("--json", "--model", "gemini-2.5-flsh", "--model", "gemini-1.5-pro"),
        {"GEMINI_API_KEY": GOOD_KEY},
    ),
    "overloaded": (("--json", "--model", OVERLOADED_MODEL), {"GEMINI_API_KEY": GOOD_KEY}),
}


@dataclass(frozen=True, slots=True)
class DoctorRun:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    def check(self, name: str) -> dict[str, Any]:
        found = [c for c in self.report["checks"] if c["name"] == name]
        assert len(found) == 1, f"no single check {name!r} in {self.stdout}"
        check: dict[str, Any] = found[0]
        return check

    def statuses(self) -> dict[str, str]:
        return {c["name"]: c["status"] for c in self.report["checks"]}

    def line(self, title: str) -> str:
        """The human-readable line whose title is `title`."""
        lines = [ln for ln in self.stdout.splitlines() if ln[2:].startswith(title)]
        assert len(lines) == 1, f"no single line titled {title!r} in:\n{self.stdout}"
        return lines[0]

    def assert_no_key_shown(self) -> None:
        for key in ALL_KEYS:
            assert key not in self.stdout
            assert key not in self.stderr


def _command() -> list[str]:
    script = Path(sys.executable).with_name("gemini-guard")
    if script.exists():
        return [str(script)]
    found = shutil.which("gemini-guard")
    return [found] if found else [sys.executable, "-c", "from gemini_guard.cli import main; main()"]


def _arguments(base_url: str, status_url: str, args: tuple[str, ...]) -> list[str]:
    return ["doctor", "--base-url", base_url, "--status-url", status_url, "--timeout", "5", *args]


def _environment(home: Path, keys: Mapping[str, str]) -> dict[str, str]:
    """Nothing from the developer's shell but PATH: no keys, no proxies, no base URL."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        **keys,
    }


# Variables of the developer's shell that would change what the in-process doctor sees.
_CLEARED = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_VERTEX_BASE_URL",
    "CLOUDSDK_CONFIG",
)


@pytest.fixture(scope="package")
def emulator() -> Iterator[EmulatorServer]:
    with serve(SCENARIO) as server:
        yield server


@pytest.fixture(scope="package")
def closed_port_url() -> Iterator[str]:
    """A loopback URL where connections are refused at once (bound, never listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/status"
    finally:
        sock.close()


@pytest.fixture(scope="package")
def subprocess_runs(
    emulator: EmulatorServer, closed_port_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, DoctorRun]:
    """Every SUBPROCESS_CASES run, launched together, with the emulator's stats before."""
    home = tmp_path_factory.mktemp("home")
    processes = {
        name: subprocess.Popen(
            [*_command(), *_arguments(emulator.base_url, closed_port_url, args)],
            env=_environment(home, keys),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        for name, (args, keys) in SUBPROCESS_CASES.items()
    }
    runs = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        runs[name] = DoctorRun(process.returncode, stdout, stderr)
    return runs


@pytest.fixture
def doctor(emulator: EmulatorServer, closed_port_url: str, tmp_path: Path) -> Any:
    """Run `gemini-guard doctor` in-process with only the given key variables set."""

    def run(
        *args: str, env: dict[str, str] | None = None, base_url: str | None = None
    ) -> DoctorRun:
        environment: dict[str, str | None] = dict.fromkeys(_CLEARED)
        environment["HOME"] = str(tmp_path)  # no gcloud login of the developer's
        environment.update(env or {})
        result = CliRunner().invoke(
            main,
            _arguments(base_url or emulator.base_url, closed_port_url, args),
            env=environment,
            catch_exceptions=False,
        )
        return DoctorRun(result.exit_code, result.stdout, result.stderr)

    return run
