"""OpenTelemetry spans and spend, from real SDK calls through a Guard to the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import BudgetExceeded
from gemini_guard.guard import Guard
from gemini_guard.telemetry import CallUsage, Event
from gemini_guard.telemetry.otel import OtelTracing
from gemini_guard.tiers import call_rates
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
KEY = "AIzaSyTRACESTESTKEY-0123456789abcdefghij"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pro_down(clock: FakeClock) -> Iterator[EmulatorServer]:
    scenario = Scenario(
        name="pro-down",
        default_tier="tier1",
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        yield server


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracing(exporter: InMemorySpanExporter) -> OtelTracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(tracer_provider=provider)


def test_a_fallback_call_is_one_span_with_a_child_per_attempt(
    pro_down: EmulatorServer, clock: FakeClock, exporter: InMemorySpanExporter
) -> None:
    guard = Guard(
        client=emulator_client(pro_down, KEY),
        models=[PRO, FLASH],
        clock=clock,
        hooks=[tracing(exporter)],
        log=False,
    )
    response = guard.models.generate_content(model=PRO, contents="Say hi")
    guard.close()
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.parent is None]
    attempts = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0)
    assert len(calls) == 1
    call = calls[0]
    # pro is retried twice before the call falls back (fallback_after=3), then flash serves
    assert [a.parent.span_id for a in attempts if a.parent] == [call.context.span_id] * 4
    assert call.attributes is not None
    assert call.attributes["gen_ai.system"] == "gemini"
    assert call.attributes["gen_ai.request.model"] == PRO
    assert call.attributes["gen_ai.response.model"] == FLASH
    usage = response.usage_metadata
    assert usage is not None
    assert call.attributes["gen_ai.usage.input_tokens"] == usage.prompt_token_count
    assert call.attributes["gen_ai.usage.output_tokens"] == usage.candidates_token_count
    cost = call.attributes["gemini_guard.cost_usd"]
    assert isinstance(cost, float)
    assert cost > 0
    *retried, failed, served = attempts
    for attempt in retried:
        assert attempt.attributes is not None
        assert attempt.attributes["gen_ai.request.model"] == PRO
        delay = attempt.attributes["gemini_guard.retry.delay"]
        assert isinstance(delay, float)
        assert delay > 0
        assert "gemini_guard.fallback.to_model" not in attempt.attributes
    assert failed.attributes is not None
    assert served.attributes is not None
    assert failed.attributes["gen_ai.request.model"] == PRO
    assert failed.attributes["error.type"] == "503"
    assert failed.attributes["gemini_guard.category"] == "overloaded"
    assert failed.attributes["gemini_guard.fallback.reason"]
    assert failed.attributes["gemini_guard.fallback.to_model"] == FLASH
    assert failed.status.status_code is StatusCode.ERROR
    assert KEY not in (failed.status.description or "")
    assert served.attributes["gen_ai.response.model"] == FLASH
    assert served.status.status_code is StatusCode.UNSET


async def test_async_and_stream_calls_end_their_spans(
    clock: FakeClock, exporter: InMemorySpanExporter
) -> None:
    with serve("healthy", clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[FLASH],
            clock=clock,
            hooks=[tracing(exporter)],
            log=False,
        )
        await guard.aio.models.generate_content(model=FLASH, contents="one")
        async for _ in await guard.aio.models.generate_content_stream(model=FLASH, contents="two"):
            pass
        guard.models.count_tokens(model=FLASH, contents="three")
        await asyncio.sleep(0)
        guard.close()
    calls = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert len(calls) == 3
    streamed = calls[1]
    assert streamed.attributes is not None
    output = streamed.attributes["gen_ai.usage.output_tokens"]
    assert isinstance(output, int)
    assert output > 0


def test_each_success_carries_its_usage_and_price(clock: FakeClock) -> None:
    events: list[Event] = []
    with serve("healthy", clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[FLASH],
            clock=clock,
            hooks=[events.append],
            log=False,
        )
        for i in range(3):
            guard.models.generate_content(model=FLASH, contents=f"price me {i}")
        for _ in guard.models.generate_content_stream(model=FLASH, contents="and a stream"):
            pass
        report = guard.spend()
        guard.close()
        body = httpx.get(f"{server.base_url}/_emulator/stats").json()["totals"]
    usages = [e for e in events if isinstance(e, CallUsage)]
    assert len(usages) == 4
    assert sum(u.input_tokens for u in usages) == body["input_tokens"]
    assert sum(u.output_tokens for u in usages) == body["output_tokens"]
    rates = call_rates(FLASH)
    assert rates is not None
    for u in usages:
        expected = (u.input_tokens * rates.input + u.output_tokens * rates.output) / 1e6
        assert u.cost_usd == pytest.approx(expected)
    assert report.calls == 4
    assert report.total_usd == pytest.approx(sum(u.cost_usd or 0 for u in usages))
    assert list(report.by_model) == [FLASH]
    assert list(report.by_day) == ["2025-12-31"]  # FakeClock's 2026-01-01 00:00 UTC, Pacific


def _budget_spent(server: EmulatorServer, clock: FakeClock) -> Guard:
    """A Guard whose day's budget its first call (made here) has spent."""
    guard = Guard(
        client=emulator_client(server, KEY),
        models=[PRO],
        clock=clock,
        log=False,
        daily_budget_usd=1e-9,  # the first call spends it
    )
    guard.models.generate_content(model=PRO, contents="the only call today")
    return guard


def test_a_daily_budget_refuses_before_sending(clock: FakeClock) -> None:
    with serve("healthy", clock=clock) as server:
        guard = _budget_spent(server, clock)
        with pytest.raises(BudgetExceeded) as caught:
            guard.models.generate_content(model=PRO, contents="one too many")
        error = caught.value
        assert error.spent_usd > error.budget_usd == 1e-9
        assert error.day == "2025-12-31"
        assert "daily budget spent" in str(error)
        assert "not sent" in str(error)
        sent = httpx.get(f"{server.base_url}/_emulator/stats").json()["totals"]["requests"]
        assert sent == 1
        # the next Pacific day has a fresh budget
        clock.set_time(error.resets_at + 1)
        guard.models.generate_content(model=PRO, contents="a new day")
        guard.close()


def test_a_spent_budget_still_counts_tokens(clock: FakeClock) -> None:
    """countTokens costs nothing: a day's spent budget refuses generation, not counts."""
    with serve("healthy", clock=clock) as server:
        guard = _budget_spent(server, clock)
        with pytest.raises(BudgetExceeded):
            guard.models.generate_content(model=PRO, contents="one too many")
        counted = guard.models.count_tokens(model=PRO, contents="how long is this?")
        assert counted.total_tokens
        async_counted = asyncio.run(
            guard.aio.models.count_tokens(model=PRO, contents="and this one?")
        )
        assert async_counted.total_tokens
        guard.close()
