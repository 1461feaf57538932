"""`--mode batch-api`: the same job through the Gemini Batch API, at half the price.

One job per run, inlined requests (`client.batches.create(model=..., src=[...])`),
polled with growing intervals on the injected clock until it ends, then written in
the same output format through the journal. Resumable: the job's display name is
journaled before it is created and its name right after, so a restarted run finds
its job (by name, or by display name if it died in between) instead of paying twice.

Not supported yet: inputs above the inline size limit (the API takes an uploaded
JSONL file then; the emulator does not emulate files), and requests naming a model
other than the job's (a job has one model): those get a failure line saying so.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from gemini_guard.batch.job import JobSummary, Prepared
from gemini_guard.batch.journal import Journal
from gemini_guard.batch.output import OutputWriter
from gemini_guard.batch.result import BatchResult, ErrorInfo
from gemini_guard.batch.runner import succeeded
from gemini_guard.clock import Clock

__all__ = ["INLINE_LIMIT_BYTES", "WORDING", "BatchApiError", "run_batch_api"]

INLINE_LIMIT_BYTES = 20 * 1024 * 1024  # the documented limit for inlined batch requests
_JOB, _DISPLAY, _IDS = "batch_api.job", "batch_api.display_name", "batch_api.ids"
# The English of every line `say` is given, and of the job states it names. A caller
# that speaks another language passes `words`, which maps each of these to its own
# text with the same fields.
SUBMITTED = "batch-api: submitted {n} requests as {name}"
STATE = "batch-api: {name} {state}"
STATES = ("pending", "queued", "running", "succeeded", "failed", "cancelled", "expired")
WORDING = (SUBMITTED, STATE, *STATES)

_TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


class BatchApiError(RuntimeError):
    """The Batch API job could not be submitted as asked (the message says why)."""


def _state(job: Any) -> str:
    state = getattr(job, "state", None)
    return str(getattr(state, "value", state))


def _find(client: Any, display_name: str) -> Any | None:
    for job in client.batches.list():
        if getattr(job, "display_name", None) == display_name:
            return job
    return None


def _inlined(request: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"contents": request.contents}
    if request.config is not None:
        item["config"] = dict(request.config)
    return item


def run_batch_api(
    client: Any,
    prepared: Prepared,
    journal: Journal,
    *,
    model: str,
    clock: Clock,
    say: Callable[[str], None] = lambda text: None,
    words: Callable[[str], str] = str,
    poll_initial: float = 10.0,
    poll_max: float = 300.0,
    poll_growth: float = 1.5,
) -> JobSummary:
    """Submit what `prepared` left to do as one Batch API job (or find the job a
    previous run submitted), wait for it, and write every result."""
    from google.genai import types

    writer = OutputWriter(prepared.files.output)
    immediate: list[BatchResult] = []
    try:
        name = journal.get(_JOB)
        ids: list[str] = json.loads(journal.get(_IDS) or "[]")
        job: Any = None
        if name is None and journal.get(_DISPLAY) is not None:
            job = _find(client, journal.get(_DISPLAY) or "")
            if job is not None:
                name = job.name
                journal.set(_JOB, name)
        if name is None:
            runnable = []
            for request in prepared.pending:
                if request.model and request.model.removeprefix("models/") != model.removeprefix(
                    "models/"
                ):
                    immediate.append(_other_model(request.id, request.model, model))
                else:
                    runnable.append(request)
            src = [_inlined(r) for r in runnable]
            size = len(json.dumps(src, default=str).encode("utf-8"))
            if size > INLINE_LIMIT_BYTES:
                raise BatchApiError(
                    f"the requests take {size:,} bytes, above the {INLINE_LIMIT_BYTES:,}-byte "
                    "inline limit; uploaded input files are not supported yet: split the input"
                )
            ids = [r.id for r in runnable]
            if ids:
                display = f"gemini-guard-{uuid.uuid4().hex[:12]}"
                journal.set(_IDS, json.dumps(ids))
                journal.set(_DISPLAY, display)
                job = client.batches.create(
                    model=model,
                    src=[types.InlinedRequest(**item) for item in src],
                    config={"display_name": display},
                )
                name = job.name
                journal.set(_JOB, name)
                say(words(SUBMITTED).format(n=len(ids), name=name))
        for result in immediate:
            _write(journal, writer, result)
        if name is not None:
            job = _wait(client, name, clock, say, words, poll_initial, poll_max, poll_growth)
            for result in _results(job, ids, model):
                if result.id not in journal.states():
                    _write(journal, writer, result)
            for key in (_JOB, _DISPLAY, _IDS):
                journal.set(key, None)
    finally:
        writer.close()
    states = journal.states()
    wanted = {r.id for r in prepared.pending}
    done = prepared.already_done + sum(1 for i in wanted if states.get(i) == "done")
    failed = prepared.already_failed + sum(1 for i in wanted if states.get(i) == "failed")
    return JobSummary(
        files=prepared.files,
        total=prepared.total,
        done=done,
        failed=failed,
        skipped=prepared.already_done + prepared.already_failed,
        problems=len(prepared.problems),
        interrupted=False,
        repair=prepared.repair,
    )


def _write(journal: Journal, writer: OutputWriter, result: BatchResult) -> None:
    line = result.to_line()
    journal.record(result, line)
    writer.write(line)


def _other_model(request_id: str, wanted: str, model: str) -> BatchResult:
    return BatchResult(
        id=request_id,
        ok=False,
        error=ErrorInfo(
            category="bad_request",
            http_status=None,
            message=f"this request names {wanted}, but a Batch API job runs one model "
            f"({model}); run it with --model {wanted}, or in --mode guard",
            error="BatchApiError",
        ),
    )


def _wait(
    client: Any,
    name: str,
    clock: Clock,
    say: Callable[[str], None],
    words: Callable[[str], str],
    initial: float,
    cap: float,
    growth: float,
) -> Any:
    delay = initial
    last = ""
    while True:
        job = client.batches.get(name=name)
        state = _state(job)
        if state != last:
            shown = words(state.removeprefix("JOB_STATE_").lower())
            say(words(STATE).format(name=name, state=shown))
            last = state
        if state in _TERMINAL:
            return job
        clock.sleep(delay)
        delay = min(cap, delay * growth)


def _results(job: Any, ids: list[str], model: str) -> list[BatchResult]:
    state = _state(job)
    responses = list(getattr(getattr(job, "dest", None), "inlined_responses", None) or [])
    if state != "JOB_STATE_SUCCEEDED" or len(responses) != len(ids):
        reason = (
            f"the Batch API job {job.name} ended {state.removeprefix('JOB_STATE_').lower()}"
            if state != "JOB_STATE_SUCCEEDED"
            else f"the Batch API job {job.name} returned {len(responses)} results "
            f"for {len(ids)} requests"
        )
        info = ErrorInfo(
            category="server_error", http_status=None, message=reason, error="BatchApiError"
        )
        return [BatchResult(id=i, ok=False, attempts=1, error=info) for i in ids]
    out = []
    for request_id, item in zip(ids, responses, strict=True):
        if item.response is not None:
            out.append(
                succeeded(
                    request_id,
                    item.response,
                    attempts=1,
                    model=item.response.model_version or model,
                )
            )
        else:
            error = item.error
            code = getattr(error, "code", None)
            out.append(
                BatchResult(
                    id=request_id,
                    ok=False,
                    attempts=1,
                    error=ErrorInfo(
                        category="bad_request" if code == 3 else "server_error",
                        http_status=None,
                        message=str(
                            getattr(error, "message", None) or "the request failed in the batch"
                        ),
                        error="BatchApiError",
                    ),
                )
            )
    return out
