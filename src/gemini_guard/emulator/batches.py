"""Batch jobs (`models/{m}:batchGenerateContent`, `batches/...`) over emulated time.

A batch is a long-running operation: PENDING for `pending_seconds`, RUNNING for
`seconds_per_request` per request, then SUCCEEDED with every inlined response;
`cancel` stops it. Responses are computed when the batch is created (they are
deterministic) and shown only once it has finished; a batch cancelled while RUNNING
shows those it had finished by then (in order, each with its request's metadata), so
a client's handling of a half-done job can be rehearsed. States are derived from the
clock when read, so nothing runs in the background. A scenario holds every batch
PENDING as long as it likes (`[batch] pending_seconds`; the shipped `batch-stuck`
holds it past the API's 48-hour expiry).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any

from gemini_guard.emulator.caches import rfc3339

__all__ = ["BatchJob", "BatchStore"]

_TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED", "BATCH_STATE_FAILED")
_TYPES = "type.googleapis.com/google.ai.generativelanguage.{version}."


@dataclass(slots=True)
class BatchJob:
    name: str
    project: str
    model: str  # "models/<id>"
    display_name: str | None
    results: list[dict[str, Any]]  # inlined responses: {"response": ...} or {"error": ...}
    create_time: float  # wall
    start_mono: float  # monotonic at creation
    pending_seconds: float
    run_seconds: float
    cancelled_at: float | None = None  # monotonic
    cancelled_wall: float | None = None

    def state(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "BATCH_STATE_CANCELLED"
        elapsed = now - self.start_mono
        if elapsed < self.pending_seconds:
            return "BATCH_STATE_PENDING"
        if elapsed < self.pending_seconds + self.run_seconds:
            return "BATCH_STATE_RUNNING"
        return "BATCH_STATE_SUCCEEDED"

    def finished(self, now: float) -> list[dict[str, Any]]:
        """The responses shown at `now`: all once succeeded; those finished before the
        cancel for a batch cancelled while running; none otherwise."""
        state = self.state(now)
        if state == "BATCH_STATE_SUCCEEDED":
            return self.results
        if state != "BATCH_STATE_CANCELLED" or self.cancelled_at is None or not self.results:
            return []
        ran = self.cancelled_at - self.start_mono - self.pending_seconds
        if ran <= 0 or self.run_seconds <= 0:
            return []
        each = self.run_seconds / len(self.results)
        return self.results[: min(len(self.results), int(ran / each))]

    def end_wall(self, now: float) -> float | None:
        state = self.state(now)
        if state == "BATCH_STATE_CANCELLED":
            return self.cancelled_wall
        if state == "BATCH_STATE_SUCCEEDED":
            return self.create_time + self.pending_seconds + self.run_seconds
        return None

    def to_operation(self, *, now: float, version: str) -> dict[str, Any]:
        """The batch as the API returns it: an Operation with GenerateContentBatch metadata."""
        state = self.state(now)
        types = _TYPES.format(version=version if version != "v1" else "v1main")
        total = len(self.results)
        failed = sum(1 for r in self.results if "error" in r)
        done = state in _TERMINAL
        succeeded_state = state == "BATCH_STATE_SUCCEEDED"
        metadata: dict[str, Any] = {
            "@type": types + "GenerateContentBatch",
            "model": self.model,
            "name": self.name,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.end_wall(now) or self.create_time),
            "state": state,
            "batchStats": {
                "requestCount": str(total),
                "pendingRequestCount": str(0 if done else total),
                "successfulRequestCount": str(total - failed if succeeded_state else 0),
                "failedRequestCount": str(failed if succeeded_state else 0),
            },
        }
        if self.display_name:
            metadata["displayName"] = self.display_name
        end = self.end_wall(now)
        if end is not None:
            metadata["endTime"] = rfc3339(end)
        operation: dict[str, Any] = {"name": self.name, "metadata": metadata}
        shown = self.finished(now)
        if succeeded_state or shown:
            output = {"inlinedResponses": {"inlinedResponses": shown}}
            metadata["output"] = output
        if succeeded_state:
            operation["response"] = {"@type": types + "GenerateContentBatchOutput", **output}
        if done:
            operation["done"] = True
        return operation


class BatchStore:
    def __init__(self, *, seed: int) -> None:
        self._seed = seed
        self._ids = itertools.count(1)
        self._jobs: dict[str, BatchJob] = {}

    def create(
        self,
        *,
        project: str,
        model: str,
        display_name: str | None,
        results: list[dict[str, Any]],
        wall: float,
        now: float,
        pending_seconds: float,
        seconds_per_request: float,
    ) -> BatchJob:
        digest = hashlib.sha256(f"batch:{self._seed}:{next(self._ids)}".encode()).hexdigest()
        job = BatchJob(
            name=f"batches/{digest[:16]}",
            project=project,
            model=model,
            display_name=display_name,
            results=results,
            create_time=wall,
            start_mono=now,
            pending_seconds=pending_seconds,
            run_seconds=seconds_per_request * len(results),
        )
        self._jobs[job.name] = job
        return job

    def get(self, name: str, *, project: str) -> BatchJob | None:
        job = self._jobs.get(name)
        return job if job is not None and job.project == project else None

    def cancel(self, name: str, *, project: str, now: float, wall: float) -> BatchJob | None:
        job = self.get(name, project=project)
        if job is not None and job.state(now) not in _TERMINAL:
            job.cancelled_at = now
            job.cancelled_wall = wall
        return job

    def delete(self, name: str, *, project: str) -> bool:
        if self.get(name, project=project) is None:
            return False
        del self._jobs[name]
        return True

    def list(self, *, project: str) -> list[BatchJob]:
        return [job for job in self._jobs.values() if job.project == project]
