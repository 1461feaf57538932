"""Quiet failures and stalls from the emulator, as the real google-genai SDK receives them.

Each fault kind fires with probability 1 here; the SDK parses the 200 without an
error, and `diagnose` tells what is wrong with what it got.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from google.genai import types

from gemini_guard import Category, diagnose, diagnose_response
from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import Emulator, serve

from .conftest import sdk_client

MODEL = "gemini-2.5-flash"


def _scenario(kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": kind, "quotas": False, "faults": [{"kind": kind, **extra}]}


QUIET = [
    ("blocked_prompt", Category.PROMPT_BLOCKED),
    ("safety_block", Category.RESPONSE_BLOCKED),
    ("empty_candidate", Category.EMPTY_RESPONSE),
    ("thinking_exhausted", Category.THINKING_EXHAUSTED),
    ("malformed_function_call", Category.MALFORMED_FUNCTION_CALL),
]


@pytest.mark.parametrize(("kind", "category"), QUIET, ids=[k for k, _ in QUIET])
def test_the_sdk_gets_a_quiet_failure_and_diagnose_names_it(kind: str, category: Category) -> None:
    config = types.GenerateContentConfig(max_output_tokens=256)
    with serve(_scenario(kind), clock=FakeClock()) as server:
        client = sdk_client(server)
        response = client.models.generate_content(model=MODEL, contents="hello", config=config)
        assert not response.text  # the SDK raises nothing: the failure is quiet
        d = diagnose(response)
        assert d.category is category
        assert diagnose_response(response) == d
        chunks = list(
            client.models.generate_content_stream(model=MODEL, contents="hello", config=config)
        )
        streamed = diagnose_response([c.model_dump(mode="json", exclude_none=True) for c in chunks])
        assert streamed is not None
        assert streamed.category is category
        stats = server.emulator.stats()["totals"]
        assert stats["rejected"].get(kind) == 2
    if kind == "thinking_exhausted":
        assert response.usage_metadata is not None
        assert response.usage_metadata.thoughts_token_count == 256
        assert "256 thinking tokens" in d.explain("en")


def test_a_probability_fires_on_about_that_share() -> None:
    emulator = Emulator(
        {
            "name": "p",
            "quotas": False,
            "seed": 3,
            "faults": [{"kind": "empty_candidate", "probability": 0.3}],
        },
        clock=FakeClock(),
    )
    with serve(emulator=emulator) as server:
        client = sdk_client(server)
        empty = sum(
            diagnose(client.models.generate_content(model=MODEL, contents=f"q{i}")).category
            is Category.EMPTY_RESPONSE
            for i in range(100)
        )
    assert 15 <= empty <= 45
    assert server.emulator.stats()["totals"]["rejected"].get("empty_candidate") == empty


def test_a_healthy_answer_is_no_problem() -> None:
    with serve("healthy", clock=FakeClock()) as server:
        client = sdk_client(server)
        response = client.models.generate_content(model=MODEL, contents="hello")
    assert response.text
    assert diagnose(response).category is Category.NO_PROBLEM


def _arrivals(clock: FakeClock | ScaledClock, kind: str, delay: float) -> list[tuple[float, str]]:
    """(emulated time, text) of each chunk of a stalled stream, from the request on."""
    scenario = _scenario(kind, delay=delay, after_chunks=2)
    scenario["stream_chunk_tokens"] = 2
    with serve(scenario, clock=clock) as server:
        client = sdk_client(server)
        started = clock.monotonic()
        stream = client.models.generate_content_stream(model=MODEL, contents="tell me a story")
        arrivals = [(started, "")]
        arrivals += [(clock.monotonic(), chunk.text or "") for chunk in stream]
    return arrivals


def _gaps(arrivals: list[tuple[float, str]]) -> list[float]:
    return [b - a for (a, _), (b, _) in itertools.pairwise(arrivals)]


STALLS = [("stall_before_first_chunk", 0), ("stall_mid_stream", 2)]


@pytest.mark.parametrize(("kind", "silent_after"), STALLS)
def test_a_stall_waits_its_delay_on_the_emulators_clock(kind: str, silent_after: int) -> None:
    clock = FakeClock()
    arrivals = _arrivals(clock, kind, delay=120)
    assert clock.sleeps == [120]  # one silence of the scenario's delay, on the clock
    assert arrivals[-1][0] - arrivals[0][0] == pytest.approx(120)
    if silent_after == 0:  # nothing at all before the stall
        assert all(at == pytest.approx(120) for at, _ in arrivals[1:])
    assert "".join(text for _, text in arrivals)  # the answer arrives after the stall


@pytest.mark.parametrize(("kind", "silent_after"), STALLS)
def test_a_stall_seen_by_the_client_on_a_scaled_clock(kind: str, silent_after: int) -> None:
    # 100 emulated seconds of silence pass in 1 real second on a 100x clock.
    gaps = _gaps(_arrivals(ScaledClock(100), kind, delay=100))
    assert len(gaps) > silent_after + 1
    # The client sees the silence less the time the chunk before it took to arrive.
    assert gaps[silent_after] >= 90
    assert max(gaps) == gaps[silent_after]


async def test_the_async_sdk_gets_them_too() -> None:
    from gemini_guard.emulator import serve_async

    async with serve_async(_scenario("safety_block"), clock=FakeClock()) as server:
        client = sdk_client(server)
        response = await client.aio.models.generate_content(model=MODEL, contents="hello")
        chunks = [
            c.model_dump(mode="json", exclude_none=True)
            async for c in await client.aio.models.generate_content_stream(
                model=MODEL, contents="hello"
            )
        ]
    assert diagnose(response).category is Category.RESPONSE_BLOCKED
    assert diagnose(chunks).category is Category.RESPONSE_BLOCKED
    assert diagnose(response).reason == "SAFETY"


def test_a_cancelled_request_reaches_the_sdk_as_a_retryable_499() -> None:
    from google.genai import errors

    with serve(_scenario("cancelled"), clock=FakeClock()) as server:
        client = sdk_client(server)
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model=MODEL, contents="hello")
    d = diagnose(caught.value)
    assert (d.http_status, d.grpc_status, d.category) == (499, "CANCELLED", Category.SERVER_ERROR)
    assert d.retryable
