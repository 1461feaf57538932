"""`--mode batch-api` with a deadline: a job still pending or running past it is
cancelled, what it answered is written, and the rest runs as paced direct calls,
journaled so that nothing is lost or run twice, even across a kill mid-switch.

The real SDK against the emulator (its batches held PENDING by the scenario), a real
SQLite journal, a FakeClock, and the emulator's request log to count what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types

from gemini_guard.batch.batch_api import DirectRunner, run_batch_api
from gemini_guard.batch.job import JobFiles, JobSummary, prepare
from gemini_guard.batch.journal import Journal
from gemini_guard.batch.reader import BatchRequest
from gemini_guard.batch.result import BatchResult
from gemini_guard.batch.runner import run_batch
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard

FLASH = "gemini-2.5-flash"
HOUR = 3600.0
N = 6


class _Killed(BaseException):
    """Stands for the process being killed at that instant (not caught by `except Exception`)."""


def _client(server: EmulatorServer) -> genai.Client:
    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=server.base_url)
    )


def _input(tmp_path: Path) -> JobFiles:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"b{i}", "prompt": f"item {i}"}) + "\n" for i in range(N))
    )
    return JobFiles.of(source, out)


def _direct(server: EmulatorServer, clock: FakeClock) -> DirectRunner:
    def run(requests: Sequence[BatchRequest]) -> Iterable[BatchResult]:
        guard = Guard(client=_client(server), models=[FLASH], clock=clock, log=False)
        try:
            yield from run_batch(guard, requests, model=FLASH, concurrency=2)
        finally:
            guard.close()

    return run


def _run(
    server: EmulatorServer,
    clock: FakeClock,
    files: JobFiles,
    *,
    deadline: float | None,
    say: Any = None,
) -> JobSummary:
    with Journal(files.journal) as journal:
        summary = run_batch_api(
            _client(server),
            prepare(files, journal),
            journal,
            model=FLASH,
            clock=clock,
            say=say or (lambda text: None),
            deadline=deadline,
            direct=_direct(server, clock),
        )
        assert [journal.get(k) for k in ("batch_api.job", "batch_api.cancelling")] == [None, None]
        return summary


def _sent(log: Path, method: str) -> int:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return sum(1 for row in rows if row["method"] == method and row["status"] == 200)


def _rows(files: JobFiles) -> list[dict[str, Any]]:
    return [json.loads(line) for line in files.output.read_text().splitlines()]


def test_a_job_pending_past_its_deadline_is_cancelled_and_answered_directly(
    tmp_path: Path,
) -> None:
    clock, files, log = FakeClock(), _input(tmp_path), tmp_path / "emulator.jsonl"
    said: list[str] = []
    with serve("batch-stuck", clock=clock, log_path=log) as server:
        started = clock.monotonic()
        summary = _run(server, clock, files, deadline=HOUR, say=said.append)
        waited = clock.monotonic() - started
        client = _client(server)  # kept: a client the SDK collects closes its connections
        (job,) = client.batches.list()
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert HOUR <= waited < HOUR + 300.0  # polled up to the deadline, not past it
    rows = _rows(files)
    assert sorted(r["id"] for r in rows) == [f"b{i}" for i in range(N)]  # 0 lost, 0 doubled
    assert all(r["ok"] and r["text"] for r in rows)
    assert _sent(log, "generateContent") == N
    assert _sent(log, "batchGenerateContent") == 1
    assert (summary.done, summary.failed) == (N, 0)
    assert any("still pending 1.0 h after it was submitted" in s for s in said)


def _half_done() -> Scenario:
    # PENDING 10 s, then 100 s per request: cancelled at 260 s, it has answered two.
    return Scenario(
        name="slow-batch",
        default_tier="tier1",
        quotas=False,
        batch={"pending_seconds": 10.0, "seconds_per_request": 100.0},  # type: ignore[arg-type]
    )


def test_what_a_cancelled_job_answered_is_written_and_only_the_rest_runs_directly(
    tmp_path: Path,
) -> None:
    clock, files, log = FakeClock(), _input(tmp_path), tmp_path / "emulator.jsonl"
    with serve(_half_done(), clock=clock, log_path=log) as server:
        summary = _run(server, clock, files, deadline=260.0)
    rows = {r["id"]: r for r in _rows(files)}
    assert sorted(rows) == [f"b{i}" for i in range(N)]
    assert len(_rows(files)) == N
    assert all(r["ok"] for r in rows.values())
    assert _sent(log, "generateContent") == N - 2
    assert summary.done == N


def test_killed_right_after_the_cancel_and_run_again_nothing_is_run_twice(
    tmp_path: Path,
) -> None:
    clock, files, log = FakeClock(), _input(tmp_path), tmp_path / "emulator.jsonl"

    def killed_once_cancelled(text: str) -> None:
        if text.endswith(" cancelled"):  # the job's state read right after the cancel
            raise _Killed

    with serve(_half_done(), clock=clock, log_path=log) as server:
        with pytest.raises(_Killed):
            _run(server, clock, files, deadline=260.0, say=killed_once_cancelled)
        with Journal(files.journal) as journal:
            assert journal.get("batch_api.cancelling") is not None  # the switch was journaled
            assert journal.states() == {}
        clock.advance(HOUR)  # the rerun comes later: the job's answers are still there
        summary = _run(server, clock, files, deadline=260.0)
        client = _client(server)
        jobs = list(client.batches.list())
    rows = _rows(files)
    assert sorted(r["id"] for r in rows) == [f"b{i}" for i in range(N)]
    assert _sent(log, "generateContent") == N - 2  # the two it answered never ran again
    assert _sent(log, "batchGenerateContent") == 1  # and no second job
    assert len(jobs) == 1
    assert summary.done == N


def test_without_a_deadline_the_run_waits_for_the_job(tmp_path: Path) -> None:
    clock, files, log = FakeClock(), _input(tmp_path), tmp_path / "emulator.jsonl"
    with serve(_half_done(), clock=clock, log_path=log) as server:
        summary = _run(server, clock, files, deadline=None)
    assert summary.done == N
    assert _sent(log, "generateContent") == 0
    assert clock.monotonic() >= 10.0 + 100.0 * N
