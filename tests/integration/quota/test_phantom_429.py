"""Phantom 429s through the real SDK: the Guard paces by the limit, not by the noise.

The emulator plays the `phantom-429` scenario (Tier 1; gemini-2.5-pro answers a bare
"Resource has been exhausted (e.g. check quota)." to 40% of requests at random) and
`shared-capacity` (Vertex-style "Resource exhausted. Please try again later."), on a
ScaledClock. The same 60 prompts, 4 workers, chain pro -> flash, go through a Guard
pacing for Tier 1 and through a Guard with pacing off: the quota limiter must not
learn a lower limit from the noise, nor make calls wait on one, so both take about
the same emulated time.
"""

from __future__ import annotations

import asyncio

import pytest
from google import genai
from google.genai import types

from gemini_guard.cli.demo import FLASH, PRO, RunResult, run_guard
from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard
from gemini_guard.policies import RetryPolicy
from gemini_guard.telemetry import Event, PhantomRateLimits, QuotaNotice

pytestmark = pytest.mark.slow

SPEED = 10.0  # emulated seconds per real second: a 30 s run takes 3 s
PROMPTS = [f"Summarise note {i} in one sentence." for i in range(60)]


def run(scenario: str, *, pacing: bool) -> tuple[RunResult, dict[str, dict[str, int]]]:
    """The run's result, and the emulator's refusals per model by reason."""
    clock = ScaledClock(SPEED)

    async def go() -> tuple[RunResult, dict[str, dict[str, int]]]:
        with serve(scenario, clock=clock) as server:
            result = await run_guard(
                server,
                PROMPTS,
                clock=clock,
                concurrency=4,
                minimum=0.0,
                models=(PRO, FLASH),
                retry=RetryPolicy.DEFAULT,
                tier="tier1",
                pacing=pacing,
            )
            (project,) = server.emulator.stats()["projects"].values()
            return result, {model: cell["rejected"] for model, cell in project.items()}

    return asyncio.run(go())


@pytest.mark.parametrize("scenario", ["phantom-429", "shared-capacity"])
def test_noise_429s_cost_the_guard_no_quota_waits(
    scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="gemini_guard"):
        paced, rejected = run(scenario, pacing=True)
    unpaced, _ = run(scenario, pacing=False)
    assert paced.succeeded == 60
    assert sum(rejected[PRO].values()) >= 10  # the noise was there
    # No limit was learned from it...
    assert not [r for r in caplog.records if "server enforces" in r.getMessage()]
    # ...the user was told what it looks like...
    assert any("phantom-429" in r.getMessage() for r in caplog.records)
    # ...and pacing cost next to nothing: emulated seconds, a few of slack for the
    # real-time jitter a ScaledClock multiplies (the old limiter took 30 times as long).
    assert paced.elapsed <= 1.2 * unpaced.elapsed + 10.0, (paced, unpaced)


def test_the_guard_reports_phantom_429s_as_a_telemetry_event() -> None:
    clock = ScaledClock(SPEED)
    events: list[Event] = []

    async def go() -> None:
        with serve("phantom-429", clock=clock) as server:
            client = genai.Client(
                api_key="phantom-test-key",
                http_options=types.HttpOptions(base_url=server.base_url),
            )
            guard = Guard(
                client=client,
                models=[PRO, FLASH],
                clock=clock,
                hooks=[events.append],
                log=False,
                seed=1,
                tier="tier1",
            )
            try:
                for i in range(20):
                    await guard.aio.models.generate_content(model=PRO, contents=f"note {i}")
            finally:
                guard.close()
                await client.aio.aclose()
                client.close()

    asyncio.run(go())
    told = [e for e in events if isinstance(e, PhantomRateLimits)]
    assert told, [type(e).__name__ for e in events]
    first = told[0]
    assert (first.model, first.notice, first.limit, first.tier) == (
        PRO,
        "phantom_429",
        150,
        "tier1",
    )
    assert first.refused >= 3
    assert first.share == first.rate / 150
    assert "phantom-429 problem" in first.message
    assert "幻影 429" in first.message_zh
    learned = [e for e in events if isinstance(e, QuotaNotice) and e.notice == "limit_learned"]
    assert learned == []
