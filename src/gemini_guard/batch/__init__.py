"""Batches: many requests through a Guard, paced to the quota, resumable, with a plan.

    from gemini_guard.batch import run_batch, arun_batch
    for result in run_batch(guard, [{"id": "q1", "prompt": "hi"}], concurrency=4): ...

- `reader`: the JSONL input (bad lines and duplicate ids set aside with line numbers)
- `runner`: requests through a Guard, sync and async (`run_batch`, `arun_batch`)
- `journal`, `output`, `job`: the crash-safe file run behind `gemini-guard batch`
- `lock`: one run per output file (`RunLock`; a second run gets `OutputLocked`)
- `planner`: time to finish under a tier's limits, cost, ETA (pure arithmetic)
- `batch_api`: the same job through the Gemini Batch API (50% cheaper, slower)
- `progress`: the live bar / plain progress lines
"""

from __future__ import annotations

from gemini_guard.batch.journal import Journal, journal_path
from gemini_guard.batch.lock import OutputLocked, RunLock, lock_path
from gemini_guard.batch.planner import Finish, Plan, auto_concurrency, finish_time, make_plan
from gemini_guard.batch.reader import BatchRequest, InputProblem, read_requests
from gemini_guard.batch.result import BatchResult, ErrorInfo
from gemini_guard.batch.runner import arun_batch, run_batch

__all__ = [
    "BatchRequest",
    "BatchResult",
    "ErrorInfo",
    "Finish",
    "InputProblem",
    "Journal",
    "OutputLocked",
    "Plan",
    "RunLock",
    "arun_batch",
    "auto_concurrency",
    "finish_time",
    "journal_path",
    "lock_path",
    "make_plan",
    "read_requests",
    "run_batch",
]
