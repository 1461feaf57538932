"""Failures that look like success, and streams that stall, through `guard.client`:
empty 200s are retried and fall back, blocked answers raise at once, thinking that ate
the budget gets one retry with less, a silent stream is broken off in time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import errors

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import ResponseBlocked, StreamStalled
from gemini_guard.guard import Guard, last_call
from gemini_guard.policies import RetryPolicy
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def _scenario(*faults: dict[str, Any]) -> Scenario:
    return Scenario.model_validate(
        {"name": "quiet", "default_tier": "tier1", "quotas": False, "faults": list(faults)}
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _serve(clock: object, *faults: dict[str, Any]) -> Iterator[EmulatorServer]:
    with serve(_scenario(*faults), clock=clock) as server:  # type: ignore[arg-type]
        yield server


def _guard(server: EmulatorServer, clock: object, **options: Any) -> Guard:
    return Guard(
        client=emulator_client(server, "quiet-key"),
        models=[FLASH],
        clock=clock,  # type: ignore[arg-type]
        seed=4,
        log=False,
        **options,
    )


def test_an_empty_200_is_retried_and_falls_back(clock: FakeClock) -> None:
    for server in _serve(clock, {"kind": "empty_candidate", "models": [PRO], "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            answer = guard.client.models.generate_content(model=PRO, contents="hi")
            info = last_call()
        finally:
            guard.close()
    assert answer.text
    assert answer.model_version == FLASH
    assert info is not None
    assert [a.category for a in info.attempts[:-1]] == [Category.EMPTY_RESPONSE] * 3
    assert info.model == FLASH


def test_a_blocked_answer_raises_at_once_with_the_response(clock: FakeClock) -> None:
    for server in _serve(clock, {"kind": "safety_block", "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            with pytest.raises(ResponseBlocked) as raised:
                guard.client.models.generate_content(model=FLASH, contents="hi")
        finally:
            guard.close()
        requests = server.emulator.stats()["totals"]["requests"]
    assert requests == 1  # the same input is blocked again: nothing retried
    assert raised.value.diagnosis.category == Category.RESPONSE_BLOCKED
    response = raised.value.response
    assert isinstance(response, dict)
    assert response["candidates"][0]["finishReason"] == "SAFETY"


def test_thinking_that_ate_the_budget_is_retried_once_with_less(clock: FakeClock) -> None:
    for server in _serve(clock, {"kind": "thinking_exhausted", "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            answer = guard.client.models.generate_content(
                model=FLASH, contents="hi", config={"max_output_tokens": 64}
            )
        finally:
            guard.close()
        requests = server.emulator.stats()["totals"]["requests"]
    headers = answer.sdk_http_response.headers if answer.sdk_http_response else {}
    # Twice (once as asked, once with less thinking), then what came, flagged.
    assert requests == 2
    assert (headers or {}).get("x-gemini-guard-quiet-failure") == "thinking_exhausted"
    assert answer.candidates
    assert answer.candidates[0].finish_reason is not None
    assert answer.candidates[0].finish_reason.name == "MAX_TOKENS"


async def test_a_stream_silent_before_its_first_chunk_is_retried() -> None:
    # 10 emulated minutes of silence before the first chunk, half the time; the Guard
    # gives a stream 120 s for it. x200: the wait costs 0.6 s of real time.
    clock = ScaledClock(200)
    fault = {
        "kind": "stall_before_first_chunk",
        "probability": 0.5,
        "delay": 600.0,
        "methods": ["streamGenerateContent"],
    }
    for server in _serve(clock, fault):
        guard = _guard(server, clock)
        try:
            texts = []
            for i in range(4):
                stream = await guard.client.aio.models.generate_content_stream(
                    model=FLASH, contents=f"s{i}"
                )
                texts.append("".join([c.text or "" async for c in stream]))
        finally:
            await guard.aclose()
    assert all(texts)


async def test_a_stream_that_goes_silent_midway_is_broken_off_with_its_text() -> None:
    clock = ScaledClock(200)
    fault = {
        "kind": "stall_mid_stream",
        "probability": 1.0,
        "delay": 6000.0,
        "after_chunks": 1,
        "methods": ["streamGenerateContent"],
    }
    for server in _serve(clock, fault):
        guard = _guard(server, clock, retry=RetryPolicy(stream_idle_timeout=20.0))
        try:
            stream = await guard.client.aio.models.generate_content_stream(
                model=FLASH, contents="a long story"
            )
            received: list[str] = []
            with pytest.raises(StreamStalled) as raised:
                await _read_all(stream, received)
        finally:
            await guard.aclose()
    assert received
    assert raised.value.partial_text == "".join(received)
    assert raised.value.diagnosis.category == Category.TIMEOUT


async def _read_all(stream: Any, into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk.text or "")


def test_the_sdk_error_class_is_kept_for_a_quiet_failure_that_could_not_be_saved(
    clock: FakeClock,
) -> None:
    for server in _serve(clock, {"kind": "empty_candidate", "probability": 1.0}):
        guard = Guard(
            client=emulator_client(server, "quiet-key"), models=[], clock=clock, log=False
        )
        try:
            with pytest.raises(errors.ServerError) as raised:
                guard.client.models.generate_content(model=FLASH, contents="hi")
        finally:
            guard.close()
    assert raised.value.diagnosis.category == Category.EMPTY_RESPONSE  # type: ignore[attr-defined]
