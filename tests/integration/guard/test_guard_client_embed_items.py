"""Embeddings through `guard.client`: each item of a batch is paced as the request it
is to Google, and a batch over the API's maximum is sent in parts and answered whole.

The real SDK (`models.embed_content` posts a list as batchEmbedContents) against the
emulator, which counts every item against RPM as the API does.
"""

from __future__ import annotations

import asyncio

import pytest
from google.genai import errors

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import Scenario, serve
from gemini_guard.errors import RequestRejected
from gemini_guard.guard import Guard
from gemini_guard.quota import QuotaLimiter
from tests.support.sdk_clients import emulator_client

EMBED = "gemini-embedding-001"
KEY = "AIzaSyEMBEDITEMSKEY-never-shown-0123456789"
RPM = 12


def _wall() -> Scenario:
    return Scenario(
        name="embed-wall",
        default_tier="free",
        limits={EMBED: {"free": {"rpm": RPM, "tpm": 1_000_000, "rpd": 10_000}}},  # type: ignore[dict-item]
    )


def _texts(call: int, items: int) -> list[str]:
    return [f"call {call} text {i}" for i in range(items)]


async def test_a_quota_wall_paced_by_items_loses_nothing_and_draws_no_429() -> None:
    # 8 calls of 4 texts at once on a 12 RPM embedding model: 8 calls fit the RPM,
    # 32 items do not. Paced per item, nothing is refused and every text comes back.
    clock = ScaledClock(120)
    with serve(_wall(), clock=clock) as server:
        limiter = QuotaLimiter(clock=clock, tier="free", limits={EMBED: {"rpm": RPM}})
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[EMBED],
            clock=clock,
            quota=limiter,
            seed=3,
            log=False,
        )
        try:
            answers = await asyncio.gather(
                *(
                    guard.client.aio.models.embed_content(model=EMBED, contents=_texts(c, 4))
                    for c in range(8)
                )
            )
        finally:
            await guard.aclose()
        stats = server.emulator.stats()["totals"]
    assert [len(a.embeddings or []) for a in answers] == [4] * 8
    assert sum(stats["rejected"].values()) == 0
    assert stats["admitted"] == 8


async def test_the_same_wall_paced_per_call_draws_429s() -> None:
    # The counterpart: 8 calls under a 12 RPM limit are what a per-call pacer lets
    # through at once; the API counts their 32 items and refuses some calls.
    clock = ScaledClock(120)
    with serve(_wall(), clock=clock) as server:
        client = emulator_client(server, KEY)
        outcomes = await asyncio.gather(
            *(
                client.aio.models.embed_content(model=EMBED, contents=_texts(c, 4))
                for c in range(8)
            ),
            return_exceptions=True,
        )
        stats = server.emulator.stats()["totals"]
    refused = [o for o in outcomes if isinstance(o, errors.ClientError)]
    assert refused
    assert all(o.code == 429 for o in refused)
    assert stats["rejected"]


def test_250_texts_go_as_3_requests_and_come_back_in_order() -> None:
    clock = FakeClock()
    scenario = Scenario(name="embed-healthy", default_tier="tier1", quotas=False)
    with serve(scenario, clock=clock) as server:
        guard = Guard(client=emulator_client(server, KEY), models=[EMBED], clock=clock, log=False)
        texts = [f"text number {i}" for i in range(250)]
        try:
            whole = guard.client.models.embed_content(model=EMBED, contents=texts)
            one_by_one = [
                guard.client.models.embed_content(model=EMBED, contents=texts[i])
                for i in (0, 99, 100, 249)
            ]
        finally:
            guard.close()
        stats = server.emulator.stats()["totals"]
    vectors = [e.values for e in whole.embeddings or []]
    assert len(vectors) == 250
    assert [vectors[i] for i in (0, 99, 100, 249)] == [
        (one.embeddings or [])[0].values for one in one_by_one
    ]
    assert stats["requests"] == 3 + 4
    assert sum(stats["rejected"].values()) == 0


async def test_250_texts_asynchronously_too() -> None:
    clock = FakeClock()
    scenario = Scenario(name="embed-healthy", default_tier="tier1", quotas=False)
    with serve(scenario, clock=clock) as server:
        guard = Guard(client=emulator_client(server, KEY), models=[EMBED], clock=clock, log=False)
        texts = [f"text number {i}" for i in range(250)]
        try:
            whole = await guard.client.aio.models.embed_content(model=EMBED, contents=texts)
            last = await guard.client.aio.models.embed_content(model=EMBED, contents=texts[-1])
        finally:
            await guard.aclose()
        stats = server.emulator.stats()["totals"]
    vectors = [e.values for e in whole.embeddings or []]
    assert len(vectors) == 250
    assert vectors[-1] == (last.embeddings or [])[0].values
    assert stats["requests"] == 3 + 1


def test_a_batch_larger_than_the_rpm_is_refused_before_it_is_sent() -> None:
    clock = FakeClock()
    with serve(_wall(), clock=clock) as server:
        limiter = QuotaLimiter(clock=clock, tier="free", limits={EMBED: {"rpm": RPM}})
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[EMBED],
            clock=clock,
            quota=limiter,
            log=False,
        )
        try:
            with pytest.raises(RequestRejected, match="send at most 12 items per call"):
                guard.client.models.embed_content(model=EMBED, contents=_texts(0, RPM + 1))
        finally:
            guard.close()
        assert server.emulator.stats()["totals"]["requests"] == 0
