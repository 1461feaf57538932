"""Failures that look like success, and streams that stall, through the SDK-shaped
`guard.models` / `guard.aio.models` (the same policies as `guard.client`): empty 200s
are retried and fall back, blocked answers raise at once with the SDK's response,
thinking that ate the budget gets one retry with less and then comes back flagged in
`last_call()`, a silent stream is retried before its first chunk and broken off after
it with the text received."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import types

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import ResponseBlocked, StreamStalled
from gemini_guard.guard import Guard, guard_info, last_call
from gemini_guard.policies import RetryPolicy
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def _serve(clock: object, *faults: dict[str, Any]) -> Iterator[EmulatorServer]:
    scenario = Scenario.model_validate(
        {"name": "quiet", "default_tier": "tier1", "quotas": False, "faults": list(faults)}
    )
    with serve(scenario, clock=clock) as server:  # type: ignore[arg-type]
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


def test_an_empty_200_is_retried_and_falls_back() -> None:
    clock = FakeClock()
    for server in _serve(clock, {"kind": "empty_candidate", "models": [PRO], "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            answer = guard.models.generate_content(model=PRO, contents="hi")
            info = last_call()
        finally:
            guard.close()
    assert isinstance(answer, types.GenerateContentResponse)
    assert answer.text
    assert answer.model_version == FLASH
    assert info is not None
    assert info.model == FLASH
    assert [a.category for a in info.attempts[:-1]] == [Category.EMPTY_RESPONSE] * 3
    assert info.quiet_failure is None  # the answer returned is a sound one
    assert guard_info(answer) == info


async def test_an_empty_200_is_retried_and_falls_back_async() -> None:
    clock = FakeClock()
    for server in _serve(clock, {"kind": "empty_candidate", "models": [PRO], "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            answer = await guard.aio.models.generate_content(model=PRO, contents="hi")
            info = last_call()
        finally:
            await guard.aclose()
    assert answer.text
    assert info is not None
    assert info.model == FLASH
    assert Category.EMPTY_RESPONSE in [a.category for a in info.attempts]


def test_a_blocked_answer_raises_at_once_with_the_sdk_response() -> None:
    clock = FakeClock()
    for server in _serve(clock, {"kind": "safety_block", "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            with pytest.raises(ResponseBlocked) as raised:
                guard.models.generate_content(model=FLASH, contents="hi")
            info = last_call()
        finally:
            guard.close()
        requests = server.emulator.stats()["totals"]["requests"]
    assert requests == 1  # the same input is blocked again: nothing retried
    assert raised.value.diagnosis.category == Category.RESPONSE_BLOCKED
    response = raised.value.response
    assert isinstance(response, types.GenerateContentResponse)
    assert response.candidates
    assert response.candidates[0].finish_reason is not None
    assert response.candidates[0].finish_reason.name == "SAFETY"
    assert info is not None
    assert info.model is None


def test_thinking_that_ate_the_budget_is_retried_once_with_less_then_returned_flagged() -> None:
    clock = FakeClock()
    for server in _serve(clock, {"kind": "thinking_exhausted", "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            answer = guard.models.generate_content(
                model=FLASH, contents="hi", config={"max_output_tokens": 64}
            )
            info = last_call()
        finally:
            guard.close()
        requests = server.emulator.stats()["totals"]["requests"]
    assert requests == 2  # once as asked, once with less thinking
    assert answer.candidates
    assert answer.candidates[0].finish_reason is not None
    assert answer.candidates[0].finish_reason.name == "MAX_TOKENS"
    assert info is not None
    assert info.quiet_failure == Category.THINKING_EXHAUSTED
    assert info.model == FLASH
    assert info.attempt_count == 2
    assert guard_info(answer) == info


def test_guard_client_tells_a_flagged_answer_in_last_call_too() -> None:
    clock = FakeClock()
    for server in _serve(clock, {"kind": "thinking_exhausted", "probability": 1.0}):
        guard = _guard(server, clock)
        try:
            guard.client.models.generate_content(
                model=FLASH, contents="hi", config={"max_output_tokens": 64}
            )
            info = last_call()
        finally:
            guard.close()
    assert info is not None
    assert info.quiet_failure == Category.THINKING_EXHAUSTED
    assert info.model == FLASH


def test_a_sound_answer_is_not_flagged() -> None:
    clock = FakeClock()
    for server in _serve(clock):
        guard = _guard(server, clock)
        try:
            answer = guard.models.generate_content(model=FLASH, contents="hi")
            info = last_call()
        finally:
            guard.close()
        requests = server.emulator.stats()["totals"]["requests"]
    assert answer.text
    assert requests == 1
    assert info is not None
    assert info.quiet_failure is None
    assert info.attempt_count == 1


async def test_an_async_stream_silent_before_its_first_chunk_is_retried() -> None:
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
                stream = await guard.aio.models.generate_content_stream(
                    model=FLASH, contents=f"s{i}"
                )
                texts.append("".join([c.text or "" async for c in stream]))
        finally:
            await guard.aclose()
        requests = server.emulator.stats()["totals"]["requests"]
    assert all(texts)
    assert requests > 4  # some first chunks never came: those attempts were sent again


async def test_an_async_stream_that_goes_silent_midway_is_broken_off_with_its_text() -> None:
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
            stream = await guard.aio.models.generate_content_stream(
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
    assert "20s" in str(raised.value)


def test_a_sync_stream_that_goes_silent_midway_is_broken_off_with_its_text() -> None:
    # The sync SDK reads with the attempt's timeout as its socket read limit: silence
    # after the first chunk past it is a stall, not a broken stream.
    clock = ScaledClock(200)
    fault = {
        "kind": "stall_mid_stream",
        "probability": 1.0,
        "delay": 6000.0,
        "after_chunks": 1,
        "methods": ["streamGenerateContent"],
    }
    for server in _serve(clock, fault):
        guard = _guard(server, clock)
        try:
            received: list[str] = []
            stream = guard.models.generate_content_stream(model=FLASH, contents="a long story")
            with pytest.raises(StreamStalled) as raised:
                received.extend(chunk.text or "" for chunk in stream)
        finally:
            guard.close()
    assert received
    assert raised.value.partial_text == "".join(received)
    assert raised.value.diagnosis.category == Category.TIMEOUT


async def _read_all(stream: Any, into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk.text or "")


def test_an_answer_returned_flagged_is_not_cached() -> None:
    clock = FakeClock()
    for server in _serve(clock, {"kind": "thinking_exhausted", "probability": 1.0}):
        guard = _guard(server, clock, cache="memory://")
        try:
            for _ in range(2):
                guard.models.generate_content(
                    model=FLASH,
                    contents="hi",
                    config={"max_output_tokens": 64, "temperature": 0},
                )
        finally:
            guard.close()
        requests = server.emulator.stats()["totals"]["requests"]
    assert requests == 4  # twice each time: nothing was served from the cache
