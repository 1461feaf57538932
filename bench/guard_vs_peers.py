"""The Guard against the guide's retry loop and the SDK's own retry, and its overhead.

    python -m bench guard_vs_peers [--requests 60] [--workers 4] [--speed 60] [--calls 300]
                                   [--in-process] [--overhead-only]

1. Quota wall: the free-tier emulator (gemini-2.5-flash: 10 RPM), `--workers` workers
   sending `--requests` prompts, on a ScaledClock, once per contender, each against a
   fresh emulator: the troubleshooting guide's `call_gemini_with_retry`, google-genai's
   `HttpRetryOptions` (defaults; its real-time sleeps divided by the clock's factor),
   and a `Guard` (default policies, one model) three ways: without quota pacing
   (`quota=False`), pacing with `tier="free"`, and pacing with the default
   `tier="auto"` (which paces once a 429 has revealed the limits).
   Reported: success %, lost, 429s per success, requests sent, first-to-last success
   against the theoretical minimum (the requests at exactly 10 RPM: the last
   minute's ten go out at its start). Goals with pacing: 0 lost, <= 0.02 429s per
   success, first-to-last within 1.1x the minimum.
2. Overhead: `--calls` sequential generate_content calls on the healthy emulator
   (no quotas, no faults, no latency; in its own process unless `--in-process`):
   bare SDK, a default Guard, and a Guard with `quota=False`, interleaved; p50 and
   p90 of each and the Guard's p50 overhead (goal: under 5%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator

from google import genai
from google.genai import types

from bench.emulator_throughput import _start_emulator
from gemini_guard.cli.demo import FLASH, RunResult, run_guard, run_guide, run_sdk_retry
from gemini_guard.clock import ScaledClock, SystemClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard
from gemini_guard.policies import RetryPolicy


async def quota_wall(requests: int, workers: int, speed: float) -> list[RunResult]:
    prompts = [f"Summarise note {i} in one sentence." for i in range(requests)]
    minimum = 60.0 * ((requests - 1) // 10)  # 10 RPM: each minute's ten go out at its start
    results = []
    for contender in ("guide", "sdk", "guard", "guard-paced", "guard-auto"):
        clock = ScaledClock(speed)
        with serve("free-tier", clock=clock) as server:
            if contender == "guide":
                r = await run_guide(
                    server, prompts, clock=clock, concurrency=workers, minimum=minimum
                )
            elif contender == "sdk":
                r = await run_sdk_retry(
                    server, prompts, clock=clock, concurrency=workers, minimum=minimum
                )
            else:
                # "guard": no pacing (the Guard issue's measurement); "guard-paced":
                # the quota limiter told the tier; "guard-auto": the default tier,
                # which paces only once a 429 has revealed the limits.
                tier = "auto" if contender == "guard-auto" else "free"
                r = await run_guard(
                    server,
                    prompts,
                    clock=clock,
                    concurrency=workers,
                    minimum=minimum,
                    models=(FLASH,),
                    retry=RetryPolicy.DEFAULT,
                    tier=tier,
                    pacing=contender != "guard",
                    name={
                        "guard": "Guard, no pacing",
                        "guard-paced": 'Guard, pacing, tier="free"',
                        "guard-auto": 'Guard, pacing, tier="auto" (default)',
                    }[contender],
                )
        results.append(r)
    return results


@contextlib.contextmanager
def _healthy_emulator(in_process: bool) -> Iterator[str]:
    """The healthy emulator's base URL: in its own process (the default, like a real
    remote API), or in a thread of this one, where its work after each answer
    competes with the caller for the GIL and inflates the caller's own time."""
    if in_process:
        with serve("healthy", clock=SystemClock()) as server:
            yield server.base_url
        return
    proc, base_url = _start_emulator()
    try:
        yield base_url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def overhead(calls: int, *, in_process: bool = False) -> dict[str, list[float]]:
    """Seconds per call: the bare SDK, a default Guard (pacing, tier "auto"), and a
    Guard without pacing, interleaved call by call so drifts hit all three alike."""
    with _healthy_emulator(in_process) as base_url:
        # The client carries the attempt timeout (60 s, the default policy's), as the
        # Guard's docs advise: then the Guard adds no per-request config, which the SDK
        # would spend about a millisecond converting on every call.
        client = genai.Client(
            api_key="bench",
            http_options=types.HttpOptions(base_url=base_url, timeout=60_000),
        )
        paced = Guard(client=client, models=[FLASH], log=False)
        unpaced = Guard(client=client, models=[FLASH], log=False, quota=False)
        paths: dict[str, Callable[[str], object]] = {
            "bare SDK": lambda p: client.models.generate_content(model=FLASH, contents=p),
            "Guard (default: pacing, tier auto)": lambda p: paced.models.generate_content(
                model=FLASH, contents=p
            ),
            "Guard, quota=False": lambda p: unpaced.models.generate_content(
                model=FLASH, contents=p
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(20):  # warm up connections and code paths
            for call in paths.values():
                call("warm up")
        for i in range(calls):
            prompt = f"prompt {i}"
            for name, call in paths.items():
                t0 = time.perf_counter()
                call(prompt)
                times[name].append(time.perf_counter() - t0)
        paced.close()
        unpaced.close()
        client.close()
    return times


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench guard_vs_peers")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="overhead: run the emulator in a thread of this process (GIL shared)",
    )
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="skip the quota wall; measure only the overhead on the healthy emulator",
    )
    args = parser.parse_args(argv)
    if not args.overhead_only:
        _print_quota_wall(args.requests, args.workers, args.speed)
    _print_overhead(args.calls, in_process=args.in_process)


def _print_quota_wall(requests: int, workers: int, speed: float) -> None:
    results = asyncio.run(quota_wall(requests, workers, speed))
    print(
        f"Quota wall: free tier, {FLASH} at 10 RPM, {requests} requests, "
        f"{workers} workers, clock x{speed:g}\n"
    )
    print(
        "| contender | success % | lost | 429s per success | requests sent "
        "| first-to-last success | minimum | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        per = r.got_429 / r.succeeded if r.succeeded else float("inf")
        print(
            f"| {r.name} | {100 * r.succeeded / r.prompts:.0f}% ({r.succeeded}/{r.prompts}) "
            f"| {r.lost} | {per:.2f} | {r.sent} | {r.span / 60:.2f} min "
            f"| {r.minimum / 60:.2f} min | {r.span / r.minimum:.2f}x |"
        )


def _print_overhead(calls: int, *, in_process: bool) -> None:
    times = overhead(calls, in_process=in_process)
    where = "in this process" if in_process else "in its own process"
    print(f"\nOverhead: {calls} sequential calls each, healthy emulator {where}, loopback\n")
    print("| path | p50 ms | p90 ms | overhead p50 |")
    print("|---|---|---|---|")
    b50 = _p(times["bare SDK"], 50)
    for name, values in times.items():
        p50 = _p(values, 50)
        extra = (
            "" if name == "bare SDK" else f"{100 * (p50 - b50) / b50:+.1f}% ({p50 - b50:+.2f} ms)"
        )
        print(f"| {name} | {p50:.2f} | {_p(values, 90):.2f} | {extra} |")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
