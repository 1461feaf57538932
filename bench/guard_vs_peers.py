"""The Guard against the guide's retry loop, the SDK's own retry and LiteLLM's Router.

    python -m bench guard_vs_peers [--requests 60] [--workers 4] [--speed 60] [--calls 300]
                                   [--mixes flaky,mixed,blip,storm,phantom|none]
                                   [--in-process] [--overhead-only] [--no-overhead]

0. Failure mixes (`--mixes`), tier1 limits so that no quota is involved, each on a
   fresh emulator with the same seed per contender, scenarios built here in code:
   - flaky: every model answers 503 to 25% and 500 to another 10% of requests;
     60 calls, 4 workers, pro -> flash -> flash-lite;
   - mixed: pro down (503), flash 500 to 30%; 30 calls, 3 workers, pro -> flash;
   - blip: pro 503 for the first 60 emulated seconds, then fine; 60 calls arriving
     one every 2 s (at most 4 at once), pro -> flash (the share served by pro is also
     given for the calls begun after 60 s, about 30);
   - storm: pro down; 30 calls, 4 workers, pro -> flash -> flash-lite;
   - phantom: pro answers a bare 429 ("Resource has been exhausted (e.g. check
     quota).", no details) to 40% of requests; 60 calls, 4 workers, pro -> flash.
   Contenders: the guide's loop and the SDK's HttpRetryOptions on the requested model
   (neither has a chain), a Guard with its defaults over the chain, and LiteLLM's
   Router over the chain (bench/_litellm.py: how its time is put on the same clock).
   Reported: served, lost, requests sent, requests to a model while it was down (a
   fault with probability 1), share of the served calls answered by the requested
   model, emulated time. All request counts are the emulator's own.

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
import dataclasses
import logging
import platform
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from google import genai
from google.genai import types

from bench import _litellm
from bench.emulator_throughput import _start_emulator
from gemini_guard.cli.demo import (
    CHAIN,
    FLASH,
    PRO,
    RunResult,
    run_guard,
    run_guide,
    run_sdk_retry,
)
from gemini_guard.clock import ScaledClock, SystemClock
from gemini_guard.emulator import EmulatorServer, Fault, LatencyRule, Scenario, serve
from gemini_guard.guard import Guard
from gemini_guard.policies import RetryPolicy


@dataclass(frozen=True, slots=True)
class Mix:
    """A failure mix: the emulator's scenario and the workload sent through it."""

    name: str
    title: str
    scenario: Scenario
    chain: tuple[str, ...]
    calls: int
    workers: int
    recovered_at: float | None = None  # blip: when the requested model is fine again
    interval: float = 0.0  # > 0: call i arrives at i * interval (else back to back)


def _tier1(name: str, seed: int, *faults: Fault) -> Scenario:
    return Scenario(
        name=name,
        seed=seed,
        default_tier="tier1",
        faults=faults,
        # about a second per answer, as gemini-2.5-flash gives short ones
        latency=(LatencyRule(distribution="lognormal", seconds=0.8, sigma=0.4),),
    )


MIXES: dict[str, Mix] = {
    mix.name: mix
    for mix in (
        Mix(
            "flaky",
            "every model 25% 503 + 10% 500, pro -> flash -> flash-lite",
            _tier1(
                "flaky-mix",
                21,
                Fault(kind="overloaded", probability=0.25),
                # faults fire in order, the first that fires wins: 10% of all requests
                Fault(kind="internal", probability=0.10 / 0.75),
            ),
            CHAIN,
            60,
            4,
        ),
        Mix(
            "mixed",
            "pro down (503), flash 30% 500, pro -> flash",
            _tier1(
                "mixed",
                22,
                Fault(kind="overloaded", models=(PRO,)),
                Fault(kind="internal", models=(FLASH,), probability=0.30),
            ),
            (PRO, FLASH),
            30,
            3,
        ),
        Mix(
            "blip",
            "pro 503 for the first 60 s, then fine, pro -> flash",
            _tier1("blip", 23, Fault(kind="overloaded", models=(PRO,), end=60.0)),
            (PRO, FLASH),
            60,
            4,
            recovered_at=60.0,
            interval=2.0,  # 120 s of traffic: 30 calls begin after pro is back
        ),
        Mix(
            "storm",
            "pro down (503), pro -> flash -> flash-lite",
            _tier1("storm", 24, Fault(kind="overloaded", models=(PRO,))),
            CHAIN,
            30,
            4,
        ),
        Mix(
            "phantom",
            "pro: a bare 429 (no details) to 40% of requests, pro -> flash",
            _tier1("phantom-mix", 25, Fault(kind="phantom_429", models=(PRO,), probability=0.4)),
            (PRO, FLASH),
            60,
            4,
        ),
    )
}

CONTENDERS = ("guide", "sdk", "guard", "litellm")


@dataclass(frozen=True, slots=True)
class MixResult:
    run: RunResult
    requests: int  # the emulator's count, every model
    while_down: int  # requests to a model while a sure fault had it down
    lag: float  # emulated seconds between the emulator's start and the run's


def _while_down(server: EmulatorServer, scenario: Scenario) -> int:
    stats = server.emulator.stats()["projects"].values()
    total = 0
    for fault in scenario.faults:
        if fault.probability < 1.0:
            continue
        for models in stats:
            for model in fault.models or tuple(models):
                cell = models.get(model)
                if cell is not None:
                    total += cell["rejected"].get(fault.kind, 0)
    return total


async def run_mix(mix: Mix, contender: str, speed: float) -> MixResult:
    """One contender through one mix, on a fresh emulator and clock."""
    prompts = [f"Summarise note {i} in one sentence." for i in range(mix.calls)]
    clock = ScaledClock(speed)
    with serve(mix.scenario, clock=clock) as server:
        first = mix.chain[0]
        if contender == "guide":
            r = await run_guide(
                server,
                prompts,
                clock=clock,
                concurrency=mix.workers,
                minimum=0.0,
                model=first,
                interval=mix.interval,
            )
        elif contender == "sdk":
            r = await run_sdk_retry(
                server,
                prompts,
                clock=clock,
                concurrency=mix.workers,
                minimum=0.0,
                model=first,
                interval=mix.interval,
            )
        elif contender == "guard":
            r = await run_guard(
                server,
                prompts,
                clock=clock,
                concurrency=mix.workers,
                minimum=0.0,
                models=mix.chain,
                retry=RetryPolicy.DEFAULT,
                tier="auto",
                name="Guard (defaults)",
                interval=mix.interval,
            )
        else:
            r = await _litellm.run_litellm_router(
                server,
                prompts,
                clock=clock,
                concurrency=mix.workers,
                chain=mix.chain,
                interval=mix.interval,
            )
        requests = server.emulator.stats()["totals"]["requests"]
        # The scenario's times count from the emulator's start, a little before the
        # run's (building the clients takes real milliseconds, seconds at x60).
        lag = r.started - (clock.monotonic() - server.emulator.elapsed())
        return MixResult(r, requests, _while_down(server, mix.scenario), lag)


async def failure_mixes(
    names: list[str], speed: float, contenders: tuple[str, ...]
) -> dict[str, list[MixResult]]:
    out: dict[str, list[MixResult]] = {}
    for name in names:
        out[name] = [await run_mix(MIXES[name], c, speed) for c in contenders]
    return out


async def quota_wall(
    requests: int, workers: int, speed: float, *, litellm: bool = False
) -> list[RunResult]:
    prompts = [f"Summarise note {i} in one sentence." for i in range(requests)]
    minimum = 60.0 * ((requests - 1) // 10)  # 10 RPM: each minute's ten go out at its start
    results = []
    contenders = ["guide", "sdk", "guard", "guard-paced", "guard-auto"]
    if litellm:
        contenders.append("litellm")
    for contender in contenders:
        clock = ScaledClock(speed)
        with serve("free-tier", clock=clock) as server:
            if contender == "litellm":
                r = await _litellm.run_litellm_router(
                    server, prompts, clock=clock, concurrency=workers, chain=(FLASH,)
                )
                r = dataclasses.replace(r, minimum=minimum)
            elif contender == "guide":
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
    """Seconds per call: the bare SDK, a default Guard (pacing, tier "auto"), a Guard
    without pacing, and the default Guard's `guard.client`, interleaved call by call so
    drifts hit them all alike."""
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
            # The same Guard reached as a client: the SDK's own call, on the guarded
            # HTTP transport (what frameworks get from guard.client).
            "guard.client (default)": lambda p: paced.client.models.generate_content(
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
        help="skip the quota wall and the mixes; measure only the overhead",
    )
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead")
    parser.add_argument(
        "--mixes",
        default=",".join(MIXES),
        help=f"failure mixes to run, comma-separated, or 'none' (of: {', '.join(MIXES)})",
    )
    args = parser.parse_args(argv)
    mixes = [] if args.mixes == "none" else [m.strip() for m in args.mixes.split(",")]
    unknown = [m for m in mixes if m not in MIXES]
    if unknown:
        parser.error(f"unknown mix {unknown[0]!r}; choose from {', '.join(MIXES)} or 'none'")
    # Breaker changes are logged as warnings; the tables tell the story.
    logging.getLogger("gemini_guard").setLevel(logging.ERROR)
    why_not = _litellm.available()
    contenders = CONTENDERS if why_not is None else CONTENDERS[:-1]
    if why_not is not None:
        print(f"LiteLLM's Router left out: {why_not}\n")
    else:
        _litellm.warm_up()
    if not args.overhead_only:
        if mixes:
            _print_mixes(mixes, args.speed, contenders)
        _print_quota_wall(args.requests, args.workers, args.speed, litellm=why_not is None)
    if not args.no_overhead:
        _print_overhead(args.calls, in_process=args.in_process)


_NAMES = {
    "guide": "guide's loop",
    "sdk": "SDK retry",
    "guard": "Guard (defaults)",
    "litellm": "LiteLLM Router",
}


def _print_mixes(names: list[str], speed: float, contenders: tuple[str, ...]) -> None:
    results = asyncio.run(failure_mixes(names, speed, contenders))
    print(f"Failure mixes: tier1 (no quota involved), clock x{speed:g}\n")
    for name, rows in results.items():
        mix = MIXES[name]
        pace = f", one every {mix.interval:g} s" if mix.interval else ""
        print(f"{name}: {mix.title}; {mix.calls} calls{pace}, {mix.workers} workers\n")
        print(
            "| contender | served | lost | requests | to a model while down "
            "| served by the requested model | emulated time |"
        )
        print("|---|---|---|---|---|---|---|")
        for row, contender in zip(rows, contenders, strict=True):
            r = row.run
            by, served = r.served_by(mix.chain[0])
            share = f"{by}/{served}" + (f" ({100 * by / served:.0f}%)" if served else "")
            if mix.recovered_at is not None:
                since = mix.recovered_at - row.lag
                late_by, late = r.served_by(mix.chain[0], since=since)
                # The outage ends `recovered_at` after the emulator started; each run
                # begins a few emulated seconds later (its clients built in real ms).
                share += f"; begun after the outage ({since:.0f} s into the run): {late_by}/{late}"
            print(
                f"| {_NAMES[contender]} | {r.succeeded}/{r.prompts} | {r.lost} | {row.requests} "
                f"| {row.while_down} | {share} | {r.elapsed:.0f} s |"
            )
        print()


def _print_quota_wall(requests: int, workers: int, speed: float, *, litellm: bool) -> None:
    results = asyncio.run(quota_wall(requests, workers, speed, litellm=litellm))
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
