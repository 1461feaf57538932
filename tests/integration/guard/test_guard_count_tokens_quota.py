"""countTokens is paced by its own quota (3,000 RPM on every tier; Google's docs),
never by its model's generation quota, and costs nothing.

The real SDK through `guard.client` and `guard.models`, against the emulator, which
keeps countTokens' quota apart from generation's as the API does.
"""

from __future__ import annotations

import asyncio

import pytest
from google.genai import errors

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import Scenario, serve
from gemini_guard.errors import DailyQuotaExhausted
from gemini_guard.guard import Guard, last_call
from gemini_guard.quota import QuotaLimiter
from gemini_guard.tiers import COUNT_TOKENS_RPM, count_tokens_quota
from tests.support.sdk_clients import emulator_client

FLASH = "gemini-2.5-flash"
COUNT = count_tokens_quota(FLASH)
KEY = "AIzaSyCOUNTQUOTAKEY-never-shown-0123456789"


def _guard(server: object, clock: object, limits: dict[str, dict[str, int]]) -> Guard:
    limiter = QuotaLimiter(clock=clock, tier="free", limits=limits)  # type: ignore[arg-type]
    return Guard(
        client=emulator_client(server, KEY),  # type: ignore[arg-type]
        models=[FLASH],
        clock=clock,  # type: ignore[arg-type]
        quota=limiter,
        seed=5,
        log=False,
    )


def test_a_generation_quota_wall_neither_delays_nor_blocks_count_tokens() -> None:
    clock = FakeClock()
    with serve("free-tier", clock=clock) as server:
        guard = _guard(server, clock, {FLASH: {"rpm": 3, "rpd": 3}})
        try:
            for i in range(3):  # the minute's and the day's generation quota spent
                guard.client.models.generate_content(model=FLASH, contents=f"p{i}")
            with pytest.raises(DailyQuotaExhausted):
                guard.client.models.generate_content(model=FLASH, contents="one more")
            before = clock.monotonic()
            counted = [
                guard.client.models.count_tokens(model=FLASH, contents="how many tokens"),
                guard.models.count_tokens(model=FLASH, contents="how many tokens"),
            ]
            waited = clock.monotonic() - before
            info = last_call()
            spend = guard.spending.report()
        finally:
            guard.close()
        stats = server.emulator.stats()["totals"]
    assert [c.total_tokens for c in counted] == [counted[0].total_tokens] * 2
    assert waited == 0.0
    assert info is not None
    assert info.model == FLASH
    assert spend.calls == 3  # the generations only: counting is free
    assert sum(stats["rejected"].values()) == 0


async def test_a_count_tokens_flood_is_paced_at_its_own_limit() -> None:
    # 50 counts at once where countTokens takes 20 a minute: none refused, about two
    # minutes waited; generation, on its own quota, waits for none of it meanwhile.
    clock = ScaledClock(120)
    scenario = Scenario(
        name="count-wall",
        default_tier="free",
        limits={COUNT: {"free": {"rpm": 20}}},  # type: ignore[dict-item]
    )
    with serve(scenario, clock=clock) as server:
        guard = _guard(server, clock, {COUNT: {"rpm": 20}})
        try:
            started = clock.monotonic()
            counts = asyncio.gather(
                *(
                    guard.client.aio.models.count_tokens(model=FLASH, contents=f"text {i}")
                    for i in range(25)
                ),
                *(
                    guard.aio.models.count_tokens(model=FLASH, contents=f"text {i}")
                    for i in range(25)
                ),
            )
            await asyncio.sleep(0)
            generated = await guard.client.aio.models.generate_content(model=FLASH, contents="hi")
            info = last_call()
            answers = await counts
            took = clock.monotonic() - started
        finally:
            await guard.aclose()
        stats = server.emulator.stats()["totals"]
    assert generated.text
    assert info is not None
    assert [(a.model, a.waited) for a in info.attempts] == [(FLASH, 0.0)]
    assert len([a for a in answers if a.total_tokens]) == 50
    assert sum(stats["rejected"].values()) == 0
    assert took >= 120.0


async def test_the_emulator_refuses_a_count_tokens_flood_over_its_own_limit() -> None:
    clock = ScaledClock(120)
    scenario = Scenario(
        name="count-wall",
        default_tier="free",
        limits={COUNT: {"free": {"rpm": 20}}},  # type: ignore[dict-item]
    )
    with serve(scenario, clock=clock) as server:
        client = emulator_client(server, KEY)
        outcomes = await asyncio.gather(
            *(client.aio.models.count_tokens(model=FLASH, contents=f"t{i}") for i in range(25)),
            return_exceptions=True,
        )
    refused = [o for o in outcomes if isinstance(o, errors.ClientError)]
    assert len(refused) == 5
    assert all(r.code == 429 for r in refused)
    assert FLASH in (refused[0].message or "")
    assert COUNT not in str(refused[0].details)


def test_every_named_tier_paces_count_tokens_at_3000_rpm() -> None:
    limiter = QuotaLimiter(clock=FakeClock(), tier="tier1")
    assert limiter.configured("p", COUNT).rpm == COUNT_TOKENS_RPM == 3000
    assert limiter.configured("p", FLASH).rpm != COUNT_TOKENS_RPM
    assert QuotaLimiter(clock=FakeClock(), tier="auto").configured("p", COUNT).rpm is None
