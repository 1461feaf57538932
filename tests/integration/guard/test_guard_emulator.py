"""The real google-genai SDK, through the Guard, against the emulator on a loopback port."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types

from gemini_guard.clock import Clock, FakeClock, ScaledClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import DailyQuotaExhausted, RequestRejected, StreamInterrupted
from gemini_guard.guard import Guard, guard_info, last_call, wrap
from gemini_guard.policies import RetryPolicy
from gemini_guard.telemetry import CallSucceeded, Event, JsonlSink, LoggingSink
from tests.support.sdk_clients import emulator_client

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"

KEY = "AIzaSyGUARDTESTKEY-do-not-log-0123456789"


def client_for(server: EmulatorServer, key: str = KEY) -> genai.Client:
    return emulator_client(server, key)


def totals(server: EmulatorServer, model: str | None = None) -> dict[str, Any]:
    stats = server.emulator.stats()
    if model is None:
        return dict(stats["totals"])
    cells = [m[model] for m in stats["projects"].values() if model in m]
    out: dict[str, Any] = {"requests": 0, "admitted": 0, "rejected": {}}
    for cell in cells:
        out["requests"] += cell["requests"]
        out["admitted"] += cell["admitted"]
        for reason, n in cell["rejected"].items():
            out["rejected"][reason] = out["rejected"].get(reason, 0) + n
    return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def overload(clock: FakeClock) -> Iterator[EmulatorServer]:
    scenario = Scenario(
        name="pro-down",
        default_tier="tier1",
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        yield server


def test_sync_falls_back_from_an_overloaded_model(
    overload: EmulatorServer, clock: FakeClock
) -> None:
    events: list[Event] = []
    guard = Guard(
        client=client_for(overload), models=[PRO, FLASH], clock=clock, hooks=[events.append]
    )
    response = guard.models.generate_content(model=PRO, contents="Say hi")
    assert isinstance(response, types.GenerateContentResponse)
    assert response.text
    assert response.model_version == FLASH
    info = guard_info(response)
    assert info is not None
    assert info == last_call()
    assert info.model == FLASH
    assert (info.requested, info.served_by_requested) == (PRO, False)
    # The requested model is retried first (one 503 says little about a model), and
    # the call falls back after `fallback_after` (3) failed attempts on it.
    assert [(a.model, a.http_status) for a in info.attempts] == [
        (PRO, 503),
        (PRO, 503),
        (PRO, 503),
        (FLASH, 200),
    ]
    assert totals(overload, PRO)["rejected"] == {"overloaded": 3}
    assert len(clock.sleeps) == 2  # backoff before each retry: 1 s then 2 s, plus jitter
    assert 1.0 <= clock.sleeps[0] <= 2.0
    assert 2.0 <= clock.sleeps[1] <= 3.0
    assert [e.kind for e in events] == [
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_failed",
        "fallback_taken",
        "attempt_started",
        "call_succeeded",
        "call_usage",
    ]
    done = events[-2]
    assert isinstance(done, CallSucceeded)
    assert (done.requested, done.served_by_requested) == (PRO, False)


def test_wrap_returns_the_same_kind_of_guard(overload: EmulatorServer, clock: FakeClock) -> None:
    client = client_for(overload)
    guard = wrap(client, models=[FLASH], clock=clock)
    assert guard.unguarded_client is client
    count = guard.models.count_tokens(model=FLASH, contents="four words in here")
    assert isinstance(count, types.CountTokensResponse)
    assert count.total_tokens is not None
    assert count.total_tokens > 0


def test_sync_rate_limit_is_waited_out_as_the_server_says(clock: FakeClock) -> None:
    scenario = Scenario(
        name="tiny",
        default_tier="free",
        limits={FLASH: {"free": {"rpm": 2}}},  # type: ignore[dict-item]
    )
    with serve(scenario, clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH], clock=clock, seed=1)
        for _ in range(5):
            guard.models.generate_content(model=FLASH, contents="hello")
        t = totals(server, FLASH)
    # 5 successes at 2 RPM: three windows; each full window costs one 429 at most.
    assert t["admitted"] == 5
    assert sum(t["rejected"].values()) <= 2
    slept = [s for s in clock.sleeps if s > 0]
    assert slept, "the Guard waited on the clock"
    assert all(s <= 61.0 for s in slept)


async def test_async_workers_on_a_quota_wall_lose_nothing() -> None:
    # The measurement: 4 workers, a 10 RPM model, no pacing. The guide's loop
    # loses a quarter of the requests there; the Guard loses none and, by waiting
    # the delay the server names, draws at most 0.5 429s per success.
    # A ScaledClock, not a FakeClock: a FakeClock jumps whenever every task of the
    # loop is parked, and a task waiting on a socket counts as parked, so time would
    # leap while requests are in flight. 120x: four quota minutes in two seconds.
    clock = ScaledClock(120)
    with serve("free-tier", clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH], clock=clock, seed=3)
        # the first async call sets up the HTTP session: keep that out of the timing
        await guard.aio.models.count_tokens(model=FLASH, contents="warm up")
        before = totals(server, FLASH)["admitted"]
        started = clock.monotonic()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(40):
            queue.put_nowait(i)
        served: list[str | None] = []

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                r = await guard.aio.models.generate_content(model=FLASH, contents=f"prompt {i}")
                served.append(r.model_version)

        await asyncio.gather(*(worker() for _ in range(4)))
        t = totals(server, FLASH)
    assert served == [FLASH] * 40
    assert t["admitted"] - before == 40
    rejected = sum(t["rejected"].values())
    assert rejected / 40 <= 0.5, t
    # 40 at 10 RPM: the last ten go out at the start of the fourth minute
    assert clock.monotonic() - started < 5 * 60


async def test_async_overloaded_falls_back(overload: EmulatorServer, clock: FakeClock) -> None:
    guard = Guard(client=client_for(overload), models=[PRO, FLASH], clock=clock)
    response = await guard.aio.models.generate_content(model=PRO, contents="hi")
    assert response.model_version == FLASH
    info = last_call()
    assert info is not None
    assert info.attempt_count == 4  # three tries on pro, then flash
    count = await guard.aio.models.count_tokens(model=FLASH, contents="hello")
    assert count.total_tokens


def test_daily_quota_parks_the_model_and_falls_back(clock: FakeClock) -> None:
    scenario = Scenario(
        name="rpd",
        default_tier="free",
        limits={FLASH: {"free": {"rpd": 2}}},  # type: ignore[dict-item]
    )
    with serve(scenario, clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH, LITE], clock=clock)
        served = [
            guard.models.generate_content(model=FLASH, contents="x").model_version for _ in range(5)
        ]
        flash = totals(server, FLASH)
        only_flash = Guard(client=client_for(server), models=[], clock=clock)
        with pytest.raises(DailyQuotaExhausted) as caught:
            only_flash.models.generate_content(model=FLASH, contents="x")
    assert served == [FLASH, FLASH, LITE, LITE, LITE]
    # one 429 taught the Guard; later calls never asked flash again today
    assert flash["requests"] == 3
    assert caught.value.diagnosis.category is Category.DAILY_QUOTA_EXHAUSTED
    assert caught.value.reset_at > clock.time()


def test_stream_falls_back_before_the_first_chunk(
    overload: EmulatorServer, clock: FakeClock
) -> None:
    guard = Guard(client=client_for(overload), models=[PRO, FLASH], clock=clock)
    chunks = list(guard.models.generate_content_stream(model=PRO, contents="tell a story"))
    assert len(chunks) >= 2
    assert all(isinstance(c, types.GenerateContentResponse) for c in chunks)
    assert {c.model_version for c in chunks} == {FLASH}
    info = guard_info(chunks[-1])
    assert info is not None
    assert [a.model for a in info.attempts] == [PRO, PRO, PRO, FLASH]


def _broken_stream_scenario() -> Scenario:
    return Scenario(
        name="broken-stream",
        default_tier="tier1",
        stream_chunk_tokens=2,
        faults=({"kind": "stream_error", "probability": 1.0, "after_chunks": 2},),  # type: ignore[arg-type]
    )


def test_stream_broken_after_first_chunk_raises_with_partial_text(clock: FakeClock) -> None:
    with serve(_broken_stream_scenario(), clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH, LITE], clock=clock)
        received: list[str] = []

        def consume() -> None:
            for chunk in guard.models.generate_content_stream(
                model=FLASH, contents="a long story please"
            ):
                received.append(chunk.text or "")

        with pytest.raises(StreamInterrupted) as caught:
            consume()
        requests = totals(server)["requests"]
    assert len(received) == 2
    assert caught.value.partial_text == "".join(received)
    assert caught.value.partial_text
    assert requests == 1  # no retry, no fallback once text has been delivered


async def test_async_stream_broken_after_first_chunk(clock: FakeClock) -> None:
    with serve(_broken_stream_scenario(), clock=clock) as server:
        guard = Guard(client=client_for(server), models=[FLASH], clock=clock)
        received: list[str] = []

        async def consume() -> None:
            async for chunk in await guard.aio.models.generate_content_stream(
                model=FLASH, contents="a long story please"
            ):
                received.append(chunk.text or "")

        with pytest.raises(StreamInterrupted) as caught:
            await consume()
    assert len(received) == 2
    assert caught.value.partial_text == "".join(received)


async def test_async_stream_falls_back(overload: EmulatorServer, clock: FakeClock) -> None:
    guard = Guard(client=client_for(overload), models=[PRO, FLASH], clock=clock)
    chunks = [
        c async for c in await guard.aio.models.generate_content_stream(model=PRO, contents="hi")
    ]
    assert chunks
    assert {c.model_version for c in chunks} == {FLASH}


def test_per_attempt_timeout_runs_on_the_clock_scale() -> None:
    # pro takes 60 emulated seconds to answer; the attempt timeout is 5 s. On a clock
    # 100x faster, that is a real 50 ms timeout against a real 0.6 s wait.
    clock: Clock = ScaledClock(100)
    scenario = Scenario(
        name="slow-pro",
        default_tier="tier1",
        latency=({"models": (PRO,), "distribution": "fixed", "seconds": 60.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        guard = Guard(
            client=client_for(server),
            models=[PRO, FLASH],
            clock=clock,
            retry=RetryPolicy(attempt_timeout=5.0),
        )
        response = guard.models.generate_content(model=PRO, contents="hi")
    info = guard_info(response)
    assert info is not None
    assert response.model_version == FLASH
    # a timeout, one smaller retry (also too slow), then the fallback
    assert [(a.model, a.category) for a in info.attempts] == [
        (PRO, Category.TIMEOUT),
        (PRO, Category.TIMEOUT),
        (FLASH, None),
    ]


def test_a_request_error_fails_fast_and_no_sink_ever_sees_the_key(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scenario = Scenario(
        name="bad-key",
        keys={KEY: {"project": "p", "state": "invalid"}},  # type: ignore[dict-item]
    )
    hooked: list[Event] = []
    jsonl = tmp_path / "events.jsonl"
    caplog.set_level(logging.DEBUG, logger="gemini_guard")
    with serve(scenario, clock=clock) as server:
        guard = Guard(
            client=client_for(server),
            models=[PRO, FLASH],
            clock=clock,
            hooks=[hooked.append, JsonlSink(jsonl), LoggingSink("gemini_guard.test")],
        )
        with pytest.raises(RequestRejected) as caught:
            guard.models.generate_content(model=PRO, contents="hi")
        requests = totals(server)["requests"]
    assert requests == 1  # no retry, no fallback: the key is wrong for every model
    assert caught.value.diagnosis.category is Category.INVALID_API_KEY
    outputs = {
        "hook": json.dumps([e.to_dict() for e in hooked]),
        "jsonl": jsonl.read_text("utf-8"),
        "logging": caplog.text,
        "exception": f"{caught.value} {caught.value.diagnosis}",
    }
    assert "call_failed" in outputs["jsonl"]
    assert "attempt_failed" in outputs["logging"]
    for name, text in outputs.items():
        assert KEY not in text, name
        assert "GUARDTESTKEY" not in text, name


async def test_with_the_quota_limiter_as_gate_nothing_is_rejected() -> None:
    from gemini_guard.quota import QuotaLimiter

    clock = ScaledClock(120)
    with serve("free-tier", clock=clock) as server:
        guard = Guard(
            client=client_for(server),
            models=[FLASH],
            clock=clock,
            quota=QuotaLimiter(clock=clock, tier="free"),
        )
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(24):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await guard.aio.models.generate_content(model=FLASH, contents=f"prompt {i}")

        await asyncio.gather(*(worker() for _ in range(4)))
        t = totals(server, FLASH)
    assert t["admitted"] == 24
    assert t["rejected"] == {}  # paced: not a single 429
