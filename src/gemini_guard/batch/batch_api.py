"""`--mode batch-api`: the same job through the Gemini Batch API, at half the price.

One job per run, inlined requests (`client.batches.create(model=..., src=[...])`),
polled with growing intervals on the injected clock until it ends, then written in
the same output format through the journal. Resumable: the job's display name is
journaled before it is created and its name right after, so a restarted run finds
its job (by name, or by display name if it died in between) instead of paying twice.

A deadline bounds the wait (`deadline`, 24 hours by default; see docs/batch.md for
why): a job still pending or running that long after it was submitted is cancelled,
whatever answers it returns are written, and the requests it did not answer run as
paced direct calls (`direct`, the Guard's runner). The switch is journaled before the
cancel is sent, so a run killed anywhere in it and started again cancels the same job,
writes what it answered and runs directly only what has no result yet: nothing is run
twice, nothing is lost.

Not supported yet: inputs above the inline size limit (the API takes an uploaded
JSONL file then; the emulator does not emulate files), and requests naming a model
other than the job's (a job has one model): those get a failure line saying so.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gemini_guard.batch.job import JobSummary, Prepared
from gemini_guard.batch.journal import Journal
from gemini_guard.batch.output import OutputWriter
from gemini_guard.batch.reader import BatchRequest
from gemini_guard.batch.result import BatchResult, ErrorInfo
from gemini_guard.batch.runner import succeeded
from gemini_guard.clock import Clock

__all__ = [
    "DEFAULT_DEADLINE",
    "INLINE_LIMIT_BYTES",
    "WORDING",
    "BatchApiError",
    "DirectRunner",
    "run_batch_api",
]

INLINE_LIMIT_BYTES = 20 * 1024 * 1024  # the documented limit for inlined batch requests
# Google's stated turnaround for a batch job is 24 hours; a job not done in 48 expires.
# Past 24 hours the job has missed its target: answering the rest directly (at twice
# the price) finishes the work a day sooner than waiting for the expiry would.
DEFAULT_DEADLINE = 24 * 3600.0
_JOB, _DISPLAY, _IDS = "batch_api.job", "batch_api.display_name", "batch_api.ids"
# When the job was submitted (wall seconds: the deadline holds across runs), and the
# job the run decided to cancel (written before the cancel is sent).
_SUBMITTED_AT, _CANCELLING = "batch_api.submitted_at", "batch_api.cancelling"
_META = (_JOB, _DISPLAY, _IDS, _SUBMITTED_AT, _CANCELLING)
# Runs requests as direct calls through a Guard; yields each one's result.
DirectRunner = Callable[[Sequence[BatchRequest]], Iterable[BatchResult]]
# The English of every line `say` is given, and of the job states it names. A caller
# that speaks another language passes `words`, which maps each of these to its own
# text with the same fields.
SUBMITTED = "batch-api: submitted {n} requests as {name}"
STATE = "batch-api: {name} {state}"
DEADLINE = (
    "batch-api: {name} is still {state} {after} after it was submitted: cancelling it; "
    "what it did not answer runs as direct calls"
)
DIRECT = "batch-api: {n} requests run as direct calls"
STATES = ("pending", "queued", "running", "succeeded", "failed", "cancelled", "expired")
WORDING = (SUBMITTED, STATE, DEADLINE, DIRECT, *STATES)

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
    # The id goes along as metadata: the answers of a job cancelled half done are
    # told apart by it, not by their position.
    item: dict[str, Any] = {"contents": request.contents, "metadata": {"key": request.id}}
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
    deadline: float | None = DEFAULT_DEADLINE,
    direct: DirectRunner | None = None,
) -> JobSummary:
    """Submit what `prepared` left to do as one Batch API job (or find the job a
    previous run submitted), wait for it, and write every result.

    `deadline`: clock seconds after submission a job may stay pending or running
    (None: wait until it ends). Past it the job is cancelled and the requests it did
    not answer are given to `direct`; without one, they get failure lines."""
    if deadline is not None and not deadline > 0:
        raise ValueError(f"deadline={deadline!r}: give a positive number of seconds, or None")
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
                journal.set(_SUBMITTED_AT, repr(clock.time()))
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
            poll = _Poll(client, name, clock, say, words, poll_initial, poll_max, poll_growth)
            if journal.get(_CANCELLING) == name:
                job = _cancel(poll)  # a run stopped during the switch: finish it
            else:
                if journal.get(_SUBMITTED_AT) is None:  # a job from before deadlines
                    journal.set(_SUBMITTED_AT, repr(clock.time()))
                submitted = float(journal.get(_SUBMITTED_AT) or clock.time())
                job = poll.wait(None if deadline is None else submitted + deadline)
                if job is None:
                    after = _hours(clock.time() - submitted)
                    state = words(_shown(poll.last))
                    say(words(DEADLINE).format(name=name, state=state, after=after))
                    journal.set(_CANCELLING, name)  # before the cancel: a rerun goes on
                    job = _cancel(poll)
            if journal.get(_CANCELLING) == name:
                _switch(job, ids, model, prepared, journal, writer, direct, say, words)
            else:
                for result in _results(job, ids, model):
                    if result.id not in journal.states():
                        _write(journal, writer, result)
            for key in _META:
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


def _shown(state: str) -> str:
    return state.removeprefix("JOB_STATE_").lower()


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


class _Poll:
    """Reads a job's state with growing intervals on the clock, telling each change."""

    def __init__(
        self,
        client: Any,
        name: str,
        clock: Clock,
        say: Callable[[str], None],
        words: Callable[[str], str],
        initial: float,
        cap: float,
        growth: float,
    ) -> None:
        self.client, self.name, self.clock = client, name, clock
        self.say, self.words = say, words
        self.initial, self.cap, self.growth = initial, cap, growth
        self.last = ""

    def read(self) -> Any:
        job = self.client.batches.get(name=self.name)
        state = _state(job)
        if state != self.last:
            shown = self.words(_shown(state))
            self.say(self.words(STATE).format(name=self.name, state=shown))
            self.last = state
        return job

    def wait(self, until: float | None) -> Any | None:
        """The job once it ended, or None when it had not by `until` (wall seconds)."""
        delay = self.initial
        while True:
            job = self.read()
            if _state(job) in _TERMINAL:
                return job
            now = self.clock.time()
            if until is not None and now >= until:
                return None
            pause = delay if until is None else min(delay, until - now)
            self.clock.sleep(pause)
            delay = min(self.cap, delay * self.growth)


def _cancel(poll: _Poll) -> Any:
    """Cancel the job (again, after a restart: a job already ended stays as it is)
    and wait until the API says it has ended."""
    try:
        poll.client.batches.cancel(name=poll.name)
    except Exception:
        # Cancelling a job that has ended is refused by some versions of the API:
        # its state, read next, is what counts.
        if _state(poll.read()) not in _TERMINAL:
            raise
    job = poll.wait(None)
    assert job is not None
    return job


def _switch(
    job: Any,
    ids: list[str],
    model: str,
    prepared: Prepared,
    journal: Journal,
    writer: OutputWriter,
    direct: DirectRunner | None,
    say: Callable[[str], None],
    words: Callable[[str], str],
) -> None:
    """After the cancel: write what the job answered, run the rest directly."""
    if _state(job) == "JOB_STATE_SUCCEEDED":  # it finished before the cancel landed
        answered = _results(job, ids, model)
    else:
        answered = _answered(job, ids, model)
    states = journal.states()
    for result in answered:
        if result.id not in states:
            _write(journal, writer, result)
    states = journal.states()
    by_id = {r.id: r for r in prepared.pending}
    rest = [by_id[i] for i in ids if i not in states and i in by_id]
    if not rest:
        return
    if direct is None:
        info = ErrorInfo(
            category="server_error",
            http_status=None,
            message=f"the Batch API job {job.name} was cancelled at its deadline and no "
            "direct runner was given; run the same command again without "
            "--mode batch-api to answer it",
            error="BatchApiError",
        )
        for request in rest:
            _write(journal, writer, BatchResult(id=request.id, ok=False, error=info))
        return
    say(words(DIRECT).format(n=len(rest)))
    for result in direct(rest):
        if result.id not in journal.states():
            _write(journal, writer, result)


def _answered(job: Any, ids: list[str], model: str) -> list[BatchResult]:
    """The answers an unfinished (cancelled) job returned, matched to their ids by the
    metadata key each request was sent with. Errors are left out: those requests run
    again directly."""
    wanted = set(ids)
    out = []
    for item in getattr(getattr(job, "dest", None), "inlined_responses", None) or ():
        key = (getattr(item, "metadata", None) or {}).get("key")
        if key in wanted and item.response is not None:
            wanted.discard(key)
            model_name = item.response.model_version or model
            out.append(succeeded(key, item.response, attempts=1, model=model_name))
    return out


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
