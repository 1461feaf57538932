"""Two `batch` runs on one output: the second refuses at once, naming the first; a run
killed with SIGKILL leaves no lock behind. Real processes, real emulator."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from gemini_guard.batch.journal import Journal, journal_path
from gemini_guard.batch.lock import OutputLocked, RunLock, lock_path
from gemini_guard.emulator import EmulatorServer
from tests.faults._batch import command, env_for, lines, sent, write_input


def _wait_for_output(out: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size > 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"the first run wrote nothing (exit {proc.poll()})")


def test_a_second_run_on_the_same_output_refuses_naming_the_first(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(source, 200)
    # One at a time (40 ms each): the first run lasts 8 s, long enough for a second
    # interpreter to start even on a loaded machine.
    first = subprocess.Popen(
        [*command(source, out), "--concurrency", "1"], env=env_for(emulator),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_output(out, first)
        second = subprocess.run(
            command(source, out), env=env_for(emulator), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert first.poll() is None, "the first run ended before the second was refused"
        assert second.returncode == 1
        assert f"process {first.pid} on {socket.gethostname()}" in second.stderr
        assert "another run is using this output" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    rows = lines(out)
    assert sorted(row["id"] for row in rows) == sorted(ids)  # once each, none missing
    assert sent(emulator) == len(ids), "a request was sent twice"


def test_a_run_killed_with_sigkill_leaves_no_lock_and_the_next_resumes(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(source, 200)
    first = subprocess.Popen(
        command(source, out), env=env_for(emulator), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_output(out, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert lock_path(out).exists()  # the file stays; its lock died with the process
    resumed = subprocess.run(
        command(source, out), env=env_for(emulator), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = lines(out)
    assert sorted(row["id"] for row in rows) == sorted(ids)
    # Killed in flight, at most `concurrency` answers were paid for and not journaled.
    assert len(ids) <= sent(emulator) <= len(ids) + 4


def test_the_lock_is_released_on_close_and_refused_while_held(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Journal(journal_path(out)):
        with pytest.raises(OutputLocked) as refused:
            Journal(journal_path(out))
        assert refused.value.holder.pid is not None
        assert refused.value.path == lock_path(out)
    with Journal(journal_path(out)):  # free again after close
        pass
    with RunLock.acquire(lock_path(out)), pytest.raises(OutputLocked):
        RunLock.acquire(lock_path(out))
