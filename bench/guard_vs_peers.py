"""The Guard against the guide's retry loop and the SDK's own retry, and its overhead.

    python -m bench guard_vs_peers [--requests 60] [--workers 4] [--speed 60] [--calls 300]

1. Quota wall: the free-tier emulator (gemini-2.5-flash: 10 RPM), `--workers` workers
   sending `--requests` prompts, on a ScaledClock, once per contender, each against a
   fresh emulator: the troubleshooting guide's `call_gemini_with_retry`, google-genai's
   `HttpRetryOptions` (defaults; its real-time sleeps divided by the clock's factor),
   and a `Guard` with its default policies and no quota pacing, one model only.
   Reported: success %, 429s per success, requests sent, time against the
   theoretical minimum (the requests at exactly 10 RPM).
2. Overhead: `--calls` sequential generate_content calls on the healthy emulator
   (no quotas, no faults, no latency), bare SDK and through a Guard, interleaved;
   p50 and p90 of each, and the Guard's p50 overhead (goal: under 5%).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

from google import genai
from google.genai import types

from gemini_guard.cli.demo import FLASH, RunResult, run_guard, run_guide, run_sdk_retry
from gemini_guard.clock import ScaledClock, SystemClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard
from gemini_guard.policies import RetryPolicy


async def quota_wall(requests: int, workers: int, speed: float) -> list[RunResult]:
    prompts = [f"Summarise note {i} in one sentence." for i in range(requests)]
    minimum = 60.0 * ((requests - 1) // 10)  # 10 RPM: each minute's ten go out at its start
    results = []
    for contender in ("guide", "sdk", "guard"):
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
                r = await run_guard(
                    server,
                    prompts,
                    clock=clock,
                    concurrency=workers,
                    minimum=minimum,
                    models=(FLASH,),
                    retry=RetryPolicy.DEFAULT,
                )
        results.append(r)
    return results


def overhead(calls: int) -> tuple[list[float], list[float]]:
    with serve("healthy", clock=SystemClock()) as server:
        # The client carries the attempt timeout (60 s, the default policy's), as the
        # Guard's docs advise: then the Guard adds no per-request config, which the SDK
        # would spend about a millisecond converting on every call.
        client = genai.Client(
            api_key="bench",
            http_options=types.HttpOptions(base_url=server.base_url, timeout=60_000),
        )
        guard = Guard(client=client, models=[FLASH], log=False)
        bare: list[float] = []
        guarded: list[float] = []
        for _ in range(20):  # warm up connections and code paths
            client.models.generate_content(model=FLASH, contents="warm up")
            guard.models.generate_content(model=FLASH, contents="warm up")
        for i in range(calls):
            prompt = f"prompt {i}"
            t0 = time.perf_counter()
            client.models.generate_content(model=FLASH, contents=prompt)
            t1 = time.perf_counter()
            guard.models.generate_content(model=FLASH, contents=prompt)
            t2 = time.perf_counter()
            bare.append(t1 - t0)
            guarded.append(t2 - t1)
        client.close()
    return bare, guarded


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench guard_vs_peers")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)

    results = asyncio.run(quota_wall(args.requests, args.workers, args.speed))
    print(
        f"Quota wall: free tier, {FLASH} at 10 RPM, {args.requests} requests, "
        f"{args.workers} workers, clock x{args.speed:g}, no pacing\n"
    )
    print("| contender | success % | 429s per success | requests sent | time | minimum |")
    print("|---|---|---|---|---|---|")
    for r in results:
        per = r.got_429 / r.succeeded if r.succeeded else float("inf")
        print(
            f"| {r.name} | {100 * r.succeeded / r.prompts:.0f}% ({r.succeeded}/{r.prompts}) "
            f"| {per:.2f} | {r.sent} | {r.elapsed / 60:.1f} min | {r.minimum / 60:.1f} min |"
        )

    bare, guarded = overhead(args.calls)
    b50, g50 = _p(bare, 50), _p(guarded, 50)
    print(f"\nOverhead: {args.calls} sequential calls, healthy emulator, loopback\n")
    print("| path | p50 ms | p90 ms |")
    print("|---|---|---|")
    print(f"| bare SDK | {b50:.2f} | {_p(bare, 90):.2f} |")
    print(f"| Guard | {g50:.2f} | {_p(guarded, 90):.2f} |")
    print(f"\nGuard overhead at p50: {100 * (g50 - b50) / b50:+.1f}% ({g50 - b50:+.2f} ms)")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
