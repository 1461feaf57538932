"""`guard.client`: a real `genai.Client` whose every call goes through the Guard.

The real SDK, unchanged, against the emulator over loopback sockets: 503s half the
time, a model that is down, a quota wall, requests the API would refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import errors, types

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import AttemptsExhausted, CallFailed, GuardError, RequestRejected
from gemini_guard.guard import Guard, last_call
from tests.support.sdk_clients import emulator_client

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
KEY = "AIzaSyCLIENTTESTKEY-never-shown-0123456789"


def _flaky(p: float = 0.5) -> Scenario:
    return Scenario(
        name="flaky",
        default_tier="tier1",
        quotas=False,
        faults=(
            {"kind": "overloaded", "probability": p},  # type: ignore[arg-type]
            {
                "kind": "overloaded",
                "probability": p,
                "methods": ["countTokens", "embedContent"],
            },
        ),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def flaky(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve(_flaky(), clock=clock) as server:
        yield server


@pytest.fixture
def pro_down(clock: FakeClock) -> Iterator[EmulatorServer]:
    scenario = Scenario(
        name="pro-down",
        default_tier="tier1",
        quotas=False,
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        yield server


def _guard(server: EmulatorServer, clock: object, **options: object) -> Guard:
    return Guard(
        client=emulator_client(server, KEY),
        models=[FLASH, LITE],
        clock=clock,  # type: ignore[arg-type]
        seed=7,
        log=False,
        **options,  # type: ignore[arg-type]
    )


def test_it_is_a_real_client_and_the_given_one_stays_reachable(flaky: EmulatorServer) -> None:
    given = emulator_client(flaky, KEY)
    guard = Guard(client=given, models=[FLASH])
    try:
        assert isinstance(guard.client, genai.Client)
        assert guard.client is guard.client
        assert guard.unguarded_client is given
        assert guard.client is not given
    finally:
        guard.close()


def test_every_sync_call_survives_503s_half_the_time(
    flaky: EmulatorServer, clock: FakeClock
) -> None:
    guard = _guard(flaky, clock)
    client = guard.client
    try:
        answers = [
            client.models.generate_content(model=FLASH, contents=f"question {i}") for i in range(20)
        ]
        streamed = [
            "".join(
                c.text or ""
                for c in client.models.generate_content_stream(model=FLASH, contents=f"s{i}")
            )
            for i in range(5)
        ]
        counted = [client.models.count_tokens(model=FLASH, contents="count me") for _ in range(5)]
        embedded = [
            client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
            for _ in range(5)
        ]
        chat = client.chats.create(model=FLASH)
        replies = [chat.send_message(f"turn {i}") for i in range(4)]
    finally:
        guard.close()
    assert all(a.text for a in answers)
    assert all(streamed)
    assert all(c.total_tokens for c in counted)
    assert all(e.embeddings and len(e.embeddings) == 2 for e in embedded)
    assert all(r.text for r in replies)
    retried = [a for a in answers if int(_header(a, "x-gemini-guard-attempts")) > 1]
    assert retried, "with 503s half the time, some calls needed more than one attempt"
    stats = flaky.emulator.stats()["totals"]
    assert stats["rejected"].get("overloaded", 0) > 0


async def test_every_async_call_survives_503s_half_the_time(
    flaky: EmulatorServer, clock: FakeClock
) -> None:
    guard = _guard(flaky, clock)
    client = guard.client
    try:
        answers = await asyncio.gather(
            *(client.aio.models.generate_content(model=FLASH, contents=f"q{i}") for i in range(10))
        )
        stream = await client.aio.models.generate_content_stream(model=FLASH, contents="s")
        text = "".join([c.text or "" async for c in stream])
        counted = await client.aio.models.count_tokens(model=FLASH, contents="count me")
        embedded = await client.aio.models.embed_content(model="gemini-embedding-001", contents="a")
        chat = client.aio.chats.create(model=FLASH)
        reply = await chat.send_message("hello")
        listed = [m.name async for m in await client.aio.models.list()]
    finally:
        await guard.aclose()
    assert all(a.text for a in answers)
    assert text
    assert counted.total_tokens
    assert embedded.embeddings
    assert reply.text
    assert f"models/{FLASH}" in listed


def test_a_model_that_is_down_is_answered_by_the_next_in_the_chain(
    pro_down: EmulatorServer, clock: FakeClock
) -> None:
    guard = _guard(pro_down, clock)
    try:
        answer = guard.client.models.generate_content(model=PRO, contents="hi")
        info = last_call()
    finally:
        guard.close()
    assert _header(answer, "x-gemini-guard-model") == FLASH
    assert answer.model_version == FLASH
    assert info is not None
    assert info.model == FLASH
    assert info.requested == PRO
    assert not info.served_by_requested


def test_a_failure_is_both_our_error_and_the_sdks(
    pro_down: EmulatorServer, clock: FakeClock
) -> None:
    guard = Guard(client=emulator_client(pro_down, KEY), models=[], clock=clock, seed=1, log=False)
    try:
        with pytest.raises(errors.ServerError) as raised:
            guard.client.models.generate_content(model=PRO, contents="hi")
        with pytest.raises(errors.ClientError) as missing:
            guard.client.models.generate_content(model="gemini-0-nothing", contents="hi")
    finally:
        guard.close()
    error = raised.value
    assert isinstance(error, AttemptsExhausted)
    assert isinstance(error, CallFailed)
    assert error.code == 503
    assert error.status == "UNAVAILABLE"
    assert error.diagnosis.category == Category.OVERLOADED
    assert len(error.attempts) > 1
    assert isinstance(missing.value, GuardError)
    assert missing.value.code == 404
    assert KEY not in str(error)
    assert KEY not in str(error.details)


def test_a_request_the_api_would_refuse_is_not_sent(
    flaky: EmulatorServer, clock: FakeClock
) -> None:
    guard = _guard(flaky, clock)
    before = flaky.emulator.stats()["totals"]["requests"]
    try:
        with pytest.raises(RequestRejected):
            guard.client.models.generate_content(
                model=FLASH, contents="hi", config=types.GenerateContentConfig(temperature=3.5)
            )
    finally:
        guard.close()
    assert flaky.emulator.stats()["totals"]["requests"] == before


async def test_a_quota_wall_loses_nothing_and_draws_no_429() -> None:
    # 25 calls at once on a 10 RPM model, the tier known: paced, none refused.
    clock = ScaledClock(120)
    with serve("free-tier", clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[FLASH],
            clock=clock,
            seed=3,
            log=False,
            tier="free",
        )
        try:
            answers = await asyncio.gather(
                *(
                    guard.client.aio.models.generate_content(model=FLASH, contents=f"p{i}")
                    for i in range(25)
                )
            )
        finally:
            await guard.aclose()
        stats = server.emulator.stats()["totals"]
    assert len([a for a in answers if a.text]) == 25
    assert stats["admitted"] == 25
    assert sum(stats["rejected"].values()) == 0


def _header(response: object, name: str) -> str:
    http = getattr(response, "sdk_http_response", None)
    headers = getattr(http, "headers", None) or {}
    return str(headers.get(name, ""))
