"""The batch runner: how much of the quota a long run uses, and its own cost per item.

    python -m bench batch_run [--prompts 240] [--speed 120] [--items 200] [--rounds 5]
                              [--record]

1. Quota use: `--prompts` prompts through the Python path behind `gemini-guard batch`
   (`batch.job.prepare` + `run_job`: journal, output file, progress observer) against
   the emulator's `free-tier` scenario (gemini-2.5-flash: 10 RPM, 250 RPD) on a
   ScaledClock x`--speed`, the Guard told the tier (`tier="free"`), concurrency as
   `--concurrency auto` picks it. From the emulator's JSONL log: requests admitted per
   emulated minute, in 60 s bins from the first admission, over the steady state (the
   first and the last bin left out: the start is a burst into an empty window, the
   end a partial minute), against the RPM limit. Goal: >= 95%. 240 prompts stay under
   the 250 RPD, so the day limit does not bind.
2. Overhead per item: `--items` prompts against the `healthy` emulator (no quotas, no
   latency, its own process), one at a time (concurrency 1), three ways in `--rounds`
   alternating rounds: bare `guard.aio.models.generate_content` calls, `arun_batch`
   (the runner alone), and `run_job` (runner + journal commit + output line +
   progress). A bare call is timed on its own; on the runner paths an item's cost is
   the gap between two consecutive results. Reported: p50 and p90 per item and the
   p50 difference to the bare calls (p50: the machine is shared, stalls hit p90).

`--record` appends both tables under "## Batch" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from google import genai
from google.genai import types

from bench.emulator_throughput import _start_emulator
from gemini_guard.batch.job import JobFiles, prepare, run_job
from gemini_guard.batch.journal import Journal
from gemini_guard.batch.planner import auto_concurrency
from gemini_guard.batch.progress import BatchProgress
from gemini_guard.batch.result import BatchResult
from gemini_guard.batch.runner import arun_batch
from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard
from gemini_guard.policies import RetryPolicy
from gemini_guard.quota import QuotaLimiter
from gemini_guard.tiers import model_spec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
MODEL = "gemini-2.5-flash"


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _write_input(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "prompt": f"Summarise note {i} in a line."}) + "\n")


def _client(base_url: str) -> genai.Client:
    return genai.Client(
        api_key="bench",
        http_options=types.HttpOptions(base_url=base_url, timeout=60_000),
    )


# -- 1. quota use ---------------------------------------------------------------------


def quota_use(prompts: int, speed: float) -> dict[str, float]:
    spec = model_spec(MODEL)
    assert spec is not None
    limits = spec.limits("free")
    assert limits.rpm is not None
    rpm = limits.rpm
    concurrency = auto_concurrency(limits)
    clock = ScaledClock(speed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _write_input(work / "in.jsonl", prompts)
        log = work / "emulator.jsonl"
        started = time.perf_counter()
        with serve("free-tier", clock=clock, log_path=log) as server:
            client = _client(server.base_url)
            files = JobFiles.of(work / "in.jsonl", work / "out.jsonl")
            with Journal(files.journal) as journal:
                prepared = prepare(files, journal)
                progress = BatchProgress(total=prepared.total, clock=clock, limits=limits)
                limiter = QuotaLimiter(store="memory://", clock=clock, tier="free")
                guard = Guard(
                    client=client,
                    clock=clock,
                    quota=limiter,
                    models=[MODEL],
                    tier="free",
                    retry=RetryPolicy.BATCH,
                    hooks=[progress],
                    log=False,
                )
                summary = asyncio.run(
                    run_job(guard, prepared, journal, concurrency=concurrency, observer=progress)
                )
                guard.close()
            client.close()
        real = time.perf_counter() - started
        records = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
        lines = (work / "out.jsonl").read_text("utf-8").splitlines()
    admitted = sorted(r["ts"] for r in records if r["status"] == 200)
    rejected = sum(1 for r in records if r["status"] != 200)
    first = admitted[0]
    bins = [0] * (int((admitted[-1] - first) // 60) + 1)
    for ts in admitted:
        bins[int((ts - first) // 60)] += 1
    steady = bins[1:-1]
    if not steady:
        raise SystemExit("the run is too short for a steady state; raise --prompts")
    minimum = 60.0 * ((prompts - 1) // rpm)
    return {
        "prompts": prompts,
        "done": summary.done,
        "failed": summary.failed,
        "lines": len(lines),
        "rpm": rpm,
        "concurrency": concurrency,
        "speed": speed,
        "sent": len(records),
        "rejected": rejected,
        "steady_minutes": len(steady),
        "per_minute": statistics.fmean(steady),
        "min_minute": min(steady),
        "use": statistics.fmean(steady) / rpm,
        "span_min": (admitted[-1] - first) / 60,
        "minimum_min": minimum / 60,
        "real_s": real,
    }


# -- 2. overhead per item -------------------------------------------------------------


class _Stamps:
    """An observer noting when each result is final (and passing it on)."""

    def __init__(self, inner: BatchProgress | None = None) -> None:
        self.times: list[float] = []
        self._inner = inner

    def waiting(self, request_id: str, until: float | None) -> None:
        if self._inner is not None:
            self._inner.waiting(request_id, until)

    def finished(self, result: BatchResult) -> None:
        assert result.ok, result
        self.times.append(time.perf_counter())
        if self._inner is not None:
            self._inner.finished(result)


def _intervals(started: float, stamps: list[float]) -> list[float]:
    # One item at a time: the gap between two results is one item's whole cost.
    return [b - a for a, b in zip([started, *stamps], stamps, strict=False)]


async def _bare(guard: Guard, prompts: list[str]) -> list[float]:
    samples = []
    for p in prompts:
        t0 = time.perf_counter()
        await guard.aio.models.generate_content(model=MODEL, contents=p)
        samples.append(time.perf_counter() - t0)
    return samples


async def _runner(guard: Guard, prompts: list[str]) -> list[float]:
    requests = [{"id": f"r{i}", "prompt": p} for i, p in enumerate(prompts)]
    stamps = _Stamps()
    started = time.perf_counter()
    async for _ in arun_batch(guard, requests, model=MODEL, concurrency=1, observer=stamps):
        pass
    assert len(stamps.times) == len(prompts)
    return _intervals(started, stamps.times)


async def _job(guard: Guard, prompts: list[str], work: Path) -> list[float]:
    _write_input(work / "in.jsonl", len(prompts))
    files = JobFiles.of(work / "in.jsonl", work / "out.jsonl")
    for path in (files.output, files.journal, files.errors):
        path.unlink(missing_ok=True)
    with Journal(files.journal) as journal:
        prepared = prepare(files, journal)
        stamps = _Stamps(BatchProgress(total=prepared.total, clock=guard.clock))
        started = time.perf_counter()
        summary = await run_job(
            guard, prepared, journal, model=MODEL, concurrency=1, observer=stamps
        )
    assert summary.done == len(prompts), summary
    # A result is stamped when the runner hands it over; its journal commit and output
    # line come right after, before the next item's result can be handed over.
    return _intervals(started, stamps.times)


PATHS = ("bare Guard calls", "arun_batch", "run_job")


def overhead(items: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per item on each path; rounds alternate the paths so drifts hit all."""
    proc, base_url = _start_emulator()
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    try:
        client = _client(base_url)
        guard = Guard(client=client, models=[MODEL], log=False, tier="tier1")
        prompts = [f"prompt {i}" for i in range(items)]

        async def all_rounds(work: Path) -> None:
            await _bare(guard, prompts[:30])  # warm up connections and code paths
            await _runner(guard, prompts[:30])
            await _job(guard, prompts[:30], work)
            for _ in range(rounds):
                times[PATHS[0]] += await _bare(guard, prompts)
                times[PATHS[1]] += await _runner(guard, prompts)
                times[PATHS[2]] += await _job(guard, prompts, work)

        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(all_rounds(Path(tmp)))
        guard.close()
        client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return times


# -- report ---------------------------------------------------------------------------


def _tables(q: dict[str, float], times: dict[str, list[float]]) -> list[str]:
    today = dt.date.today().isoformat()
    machine = _machine()
    out = [
        "| date | prompts | done | output lines | RPM | concurrency | clock | sent | 429s "
        "| steady minutes | admitted per minute (mean / min) | quota used | first-to-last "
        "| minimum | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {today} | {q['prompts']:.0f} | {q['done']:.0f} | {q['lines']:.0f} | {q['rpm']:.0f} "
        f"| {q['concurrency']:.0f} | x{q['speed']:g} | {q['sent']:.0f} | {q['rejected']:.0f} "
        f"| {q['steady_minutes']:.0f} | {q['per_minute']:.2f} / {q['min_minute']:.0f} "
        f"| {q['use']:.1%} | {q['span_min']:.2f} min | {q['minimum_min']:.2f} min "
        f"| {machine} |",
        "",
        "| date | path | items | p50 ms per item | p90 ms per item | vs bare calls, p50 "
        "| machine |",
        "|---|---|---|---|---|---|---|",
    ]
    bare = statistics.median(times[PATHS[0]])
    for name in PATHS:
        samples = sorted(times[name])
        p50 = statistics.median(samples)
        p90 = samples[int(len(samples) * 0.9)]
        diff = "" if name == PATHS[0] else f"{(p50 - bare) * 1000:+.3f} ms"
        out.append(
            f"| {today} | {name} | {len(samples)} | {p50 * 1000:.3f} | {p90 * 1000:.3f} "
            f"| {diff} | {machine} |"
        )
    return out


def _record(lines: list[str]) -> None:
    text = RESULTS.read_text("utf-8")
    heading = "## Batch"
    if heading not in text.splitlines():
        text = (
            text.rstrip("\n")
            + "\n\n"
            + heading
            + "\n\n`python -m bench batch_run --record` (see the module docstring). "
            "Quota use: 240 prompts through `batch.job.run_job` (journal, output, progress) "
            "on the free-tier emulator (gemini-2.5-flash, 10 RPM), ScaledClock, "
            '`tier="free"`; admitted requests per emulated minute over the steady state '
            "(first and last minute left out) against the RPM. Goal >= 95%. Overhead: the "
            "healthy emulator in its own process, one item at a time, alternating rounds; "
            "an item's cost on the runner paths is the gap between consecutive results.\n"
        )
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n", "utf-8")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench batch_run")
    parser.add_argument("--prompts", type=int, default=240)
    parser.add_argument("--speed", type=float, default=120.0)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    q = quota_use(args.prompts, args.speed)
    print(
        f"quota use: {q['done']:.0f}/{q['prompts']:.0f} done, {q['lines']:.0f} output lines, "
        f"{q['sent']:.0f} sent, {q['rejected']:.0f} rejected; steady state "
        f"{q['per_minute']:.2f} admitted/min (min {q['min_minute']:.0f}) of {q['rpm']:.0f} RPM "
        f"= {q['use']:.1%}; first-to-last {q['span_min']:.2f} min (minimum "
        f"{q['minimum_min']:.2f}); {q['real_s']:.1f} s real"
    )
    if math.isnan(q["use"]):
        sys.exit(1)
    times = overhead(args.items, args.rounds)
    lines = _tables(q, times)
    print("\n".join(lines))
    if args.record:
        _record(lines)
