"""Bare 429s that are not the limit: what quota pacing costs on them.

    python -m bench phantom_quota [--speed 10] [--requests 60] [--workers 4]

Per scenario (`phantom-429`: Tier 1, gemini-2.5-pro answers "Resource has been
exhausted (e.g. check quota)." to 40% of requests at random; `shared-capacity`:
Vertex-style "Resource exhausted. Please try again later." 429s), each contender
against a fresh emulator on a ScaledClock, side by side: the troubleshooting
guide's retry loop on gemini-2.5-pro, a Guard pacing for Tier 1 (chain pro ->
flash, default policies) and the same Guard with `quota=False`. Reported: served,
served by pro, requests, 429s, emulated seconds. The quota limiter's share of the
Guard's time is the gap between its two rows; the retry and fallback decisions,
common to both rows, are the policies'.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random

from google.genai import errors

from gemini_guard.cli.demo import (
    FLASH,
    PRO,
    CallTally,
    RunResult,
    _client,
    call_gemini_with_retry,
    run_guard,
    run_workers,
)
from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import EmulatorServer, serve
from gemini_guard.policies import RetryPolicy

SCENARIOS = ("phantom-429", "shared-capacity")


def _served_by_pro(server: EmulatorServer) -> int:
    served = 0
    for models in server.emulator.stats()["projects"].values():
        cell = models.get(PRO)
        if cell is not None:
            served += cell["requests"] - sum(cell["rejected"].values())
    return served


async def _guide(scenario: str, prompts: list[str], workers: int, speed: float) -> RunResult:
    clock = ScaledClock(speed)
    with serve(scenario, clock=clock) as server:
        client = _client(server)
        tally = CallTally(clock)
        rng = random.Random(1)
        started = clock.monotonic()

        async def one(prompt: str) -> None:
            try:
                await call_gemini_with_retry(
                    client, prompt, clock=clock, rng=rng, model=PRO, on_attempt=tally.status
                )
                tally.success()
            except errors.APIError:
                pass

        try:
            await run_workers(prompts, workers, one)
        finally:
            await client.aio.aclose()
            client.close()
        return RunResult(
            "guide's loop (pro)",
            len(prompts),
            tally.succeeded,
            tally.sent,
            tally.got_429,
            tally.got_5xx,
            clock.monotonic() - started,
            0.0,
        )


async def _guard(
    scenario: str, prompts: list[str], workers: int, speed: float, *, pacing: bool
) -> tuple[RunResult, int]:
    clock = ScaledClock(speed)
    with serve(scenario, clock=clock) as server:
        result = await run_guard(
            server,
            prompts,
            clock=clock,
            concurrency=workers,
            minimum=0.0,
            models=(PRO, FLASH),
            retry=RetryPolicy.DEFAULT,
            tier="tier1",
            pacing=pacing,
            name='Guard, tier="tier1"' if pacing else "Guard, quota=False",
        )
        return result, _served_by_pro(server)


async def _run(requests: int, workers: int, speed: float) -> None:
    prompts = [f"Summarise note {i} in one sentence." for i in range(requests)]
    for scenario in SCENARIOS:
        guide = await _guide(scenario, prompts, workers, speed)
        paced, paced_pro = await _guard(scenario, prompts, workers, speed, pacing=True)
        free, free_pro = await _guard(scenario, prompts, workers, speed, pacing=False)
        print(f"\n{scenario}: {requests} calls, {workers} workers, ScaledClock({speed:g})")
        print("| contender | served | by pro | requests | 429s | time (emulated) |")
        print("|---|---|---|---|---|---|")
        for row, pro in ((guide, None), (paced, paced_pro), (free, free_pro)):
            print(
                f"| {row.name} | {row.succeeded}/{row.prompts} | {'-' if pro is None else pro} "
                f"| {row.sent} | {row.got_429} | {row.elapsed:.1f} s |"
            )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench phantom_quota")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args(argv)
    # The limiter's phantom-429 warnings would interleave with the tables.
    logging.getLogger("gemini_guard").setLevel(logging.ERROR)
    asyncio.run(_run(args.requests, args.workers, args.speed))
