"""The response cache: cost of a hit, and what it saves on a workload with repeats.

    python -m bench cache_hit [--record]

1. Hit path: `guard.models.generate_content` answered from a `memory://` cache (key,
   lookup, a fresh copy of the stored SDK response, stats), p50/p99 over 20,000 calls,
   next to the cost of computing the key alone.
2. Workload: 1,000 temperature-0 requests drawn (seeded) from 200 distinct prompts
   with Zipf-like weights 1/rank, through a Guard with and without the cache, against
   the emulator on loopback. Reported: requests that reached the emulator, calls and
   dollars saved (`ResponseCache.stats()`).
`--record` appends the tables to docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from google import genai
from google.genai import types

from gemini_guard.cache import request_key
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Scenario, serve
from gemini_guard.guard import Guard

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gemini-2.5-flash"
CONFIG: types.GenerateContentConfigDict = {"temperature": 0}


def _time(op: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(500):
        op()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        op()
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def _workload(n: int, distinct: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    prompts = [f"question {i}: what is {i} times {i + 1}?" for i in range(distinct)]
    weights = [1 / (rank + 1) for rank in range(distinct)]
    return rng.choices(prompts, weights=weights, k=n)


def _machine() -> str:
    cpus = os.cpu_count() or 0
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"


def main(argv: list[str]) -> None:
    record = "--record" in argv
    clock = FakeClock()
    lines: list[str] = []
    with serve(Scenario(name="bench", default_tier="tier3"), clock=clock) as server:
        client = genai.Client(
            api_key="bench-key-0000", http_options=types.HttpOptions(base_url=server.base_url)
        )
        try:
            guard = Guard(client=client, clock=clock, cache="memory://", log=False, quota=False)
            guard.models.generate_content(model=MODEL, contents="hello there", config=CONFIG)

            def hit() -> object:
                return guard.models.generate_content(
                    model=MODEL, contents="hello there", config=CONFIG
                )

            def key() -> object:
                return request_key(
                    project="default", model=MODEL, contents="hello there", config=CONFIG
                )

            hit_p50, hit_p99 = _time(hit, 20_000)
            key_p50, key_p99 = _time(key, 20_000)
            stamp = dt.date.today().isoformat()
            lines += [
                "| date | operation | p50 µs | p99 µs | machine |",
                "|---|---|---:|---:|---|",
                f"| {stamp} | cache hit (`generate_content`, memory://) "
                f"| {hit_p50:.1f} | {hit_p99:.1f} | {_machine()} |",
                f"| {stamp} | request key alone | {key_p50:.1f} | {key_p99:.1f} | {_machine()} |",
                "",
            ]

            prompts = _workload(1000, 200, seed=7)
            before = server.emulator.stats()["totals"]["requests"]
            plain = Guard(client=client, clock=clock, log=False, quota=False)
            for prompt in prompts:
                plain.models.generate_content(model=MODEL, contents=prompt, config=CONFIG)
            uncached = server.emulator.stats()["totals"]["requests"] - before

            before = server.emulator.stats()["totals"]["requests"]
            cached = Guard(client=client, clock=clock, cache="memory://", log=False, quota=False)
            for prompt in prompts:
                cached.models.generate_content(model=MODEL, contents=prompt, config=CONFIG)
            upstream = server.emulator.stats()["totals"]["requests"] - before
            assert cached.cache is not None
            stats = cached.cache.stats()
            lines += [
                "| workload: 1,000 requests, 200 prompts, weights 1/rank "
                "| without cache | with cache |",
                "|---|---:|---:|",
                f"| requests reaching the API | {uncached} | {upstream} |",
                f"| calls saved (hit ratio) | – "
                f"| {stats.upstream_calls_saved} ({stats.hit_ratio:.0%}) |",
                f"| tokens saved | – | {stats.tokens_saved:,} |",
                f"| dollars saved ({MODEL} standard prices) | – | ${stats.dollars_saved:.4f} |",
            ]
        finally:
            client.close()
    text = "\n".join(lines)
    print(text)
    if record:
        stamp = dt.date.today().isoformat()
        where = (
            f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}"
        )
        path = ROOT / "docs" / "benchmarks.md"
        with path.open("a", encoding="utf-8") as file:
            file.write(f"\n### Run of {stamp} ({where})\n\n{text}\n")
        print(f"recorded in {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
