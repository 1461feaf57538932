"""A batch over files, crash-safe: input JSONL in, output JSONL out, a journal between.

    summary = await run_job(guard, input="in.jsonl", output="out.jsonl", concurrency=4)

Running the same job again resumes it: the output is first repaired from the journal
(see `output.repair`), then only requests with no final result run. For each result,
the journal commits it before its line is appended, so every input id ends with
exactly one output line whatever instant the process dies at. Failed requests keep
their failure line; `retry_failed=True` runs them again (their old lines are dropped
first).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gemini_guard.batch.journal import Journal, journal_path
from gemini_guard.batch.output import OutputWriter, RepairReport, repair
from gemini_guard.batch.reader import BatchRequest, InputProblem, read_requests, write_problems
from gemini_guard.batch.runner import Observer, arun_batch

if TYPE_CHECKING:
    from gemini_guard.guard import Guard

__all__ = ["JobFiles", "JobSummary", "Prepared", "errors_path", "prepare", "run_job"]


def errors_path(output: str | Path) -> Path:
    """Where rejected input lines are listed: `<output>.errors.jsonl`."""
    output = Path(output)
    return output.with_name(output.name + ".errors.jsonl")


@dataclass(frozen=True, slots=True)
class JobFiles:
    input: Path
    output: Path
    journal: Path
    errors: Path

    @classmethod
    def of(cls, input: str | Path, output: str | Path) -> JobFiles:
        return cls(Path(input), Path(output), journal_path(output), errors_path(output))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job ready to run: what is left, what was already done, what was rejected."""

    files: JobFiles
    pending: tuple[BatchRequest, ...]
    total: int
    already_done: int
    already_failed: int
    problems: tuple[InputProblem, ...]
    repair: RepairReport


@dataclass(frozen=True, slots=True)
class JobSummary:
    files: JobFiles
    total: int  # valid requests in the input
    done: int  # succeeded, this run and before
    failed: int  # failed, this run and before
    skipped: int  # final before this run started
    problems: int  # input lines rejected
    interrupted: bool
    repair: RepairReport
    categories: dict[str, int] = field(default_factory=dict)  # failures this run
    models: dict[str, int] = field(default_factory=dict)  # successes this run

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed


def prepare(files: JobFiles, journal: Journal, *, retry_failed: bool = False) -> Prepared:
    """Read the input, list its problems, repair the output, find what is left."""
    if not files.input.is_file():
        raise FileNotFoundError(f"input file {files.input} does not exist")
    if files.input.resolve() == files.output.resolve():
        raise ValueError("the output file must not be the input file; pick another -o path")
    read = read_requests(files.input)
    write_problems(files.errors, read.problems)
    drop: list[str] = []
    if retry_failed:
        drop = [i for i, state in journal.states().items() if state == "failed"]
    report = repair(files.output, journal, drop=drop)
    if drop:
        journal.forget(drop)
    states = journal.states()
    wanted = {r.id for r in read.requests}
    pending = tuple(r for r in read.requests if r.id not in states)
    done = sum(1 for i, s in states.items() if s == "done" and i in wanted)
    failed = sum(1 for i, s in states.items() if s == "failed" and i in wanted)
    return Prepared(files, pending, len(read.requests), done, failed, read.problems, report)


async def run_job(
    guard: Guard,
    prepared: Prepared,
    journal: Journal,
    *,
    model: str | None = None,
    concurrency: int = 4,
    observer: Observer | None = None,
    stop: asyncio.Event | None = None,
) -> JobSummary:
    """Run what `prepared` left to do, journaling then writing each result."""
    writer = OutputWriter(prepared.files.output)
    done, failed = prepared.already_done, prepared.already_failed
    categories: Counter[str] = Counter()
    models: Counter[str] = Counter()
    try:
        async for result in arun_batch(
            guard,
            prepared.pending,
            model=model,
            concurrency=concurrency,
            observer=observer,
            stop=stop,
        ):
            line = result.to_line()
            journal.record(result, line)  # committed first: the line can always be rebuilt
            writer.write(line)
            if result.ok:
                done += 1
                models[result.model or "?"] += 1
            else:
                failed += 1
                categories[result.error.category if result.error else "?"] += 1
    finally:
        writer.close()
    return JobSummary(
        files=prepared.files,
        total=prepared.total,
        done=done,
        failed=failed,
        skipped=prepared.already_done + prepared.already_failed,
        problems=len(prepared.problems),
        interrupted=stop is not None and stop.is_set() and done + failed < prepared.total,
        repair=prepared.repair,
        categories=dict(categories),
        models=dict(models),
    )
