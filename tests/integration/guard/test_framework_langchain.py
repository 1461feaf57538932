"""A framework that holds a `genai.Client`, run on `guard.client`: LangChain's
google-genai chat model against the emulator, through 503s and a quota wall."""

from __future__ import annotations

from google import genai
from google.genai import types
from langchain_google_genai import ChatGoogleGenerativeAI

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard, last_call

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def _chat(server: EmulatorServer, guard: Guard, model: str) -> ChatGoogleGenerativeAI:
    # LangChain builds its own client from its fields; the guarded one replaces it.
    llm = ChatGoogleGenerativeAI(
        model=model, google_api_key="unused", base_url=server.base_url, max_retries=0
    )
    llm.client = guard.client
    return llm


def _guard(server: EmulatorServer, clock: object, **options: object) -> Guard:
    client = genai.Client(
        api_key="framework-key", http_options=types.HttpOptions(base_url=server.base_url)
    )
    return Guard(client=client, models=[FLASH], log=False, seed=2, clock=clock, **options)  # type: ignore[arg-type]


async def test_503s_that_pass_are_retried_under_the_framework() -> None:
    clock = FakeClock()
    scenario = Scenario(
        name="pro-blip",
        default_tier="tier1",
        quotas=False,
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0, "end": 2.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        guard = _guard(server, clock)
        try:
            llm = _chat(server, guard, PRO)
            reply = llm.invoke("hello")
            retried = last_call()
            later = await llm.ainvoke("hello again")
            streamed = "".join(str(chunk.content) for chunk in llm.stream("and a stream"))
        finally:
            await guard.aclose()
    assert reply.content
    assert retried is not None
    assert retried.model == PRO  # it recovered: served by the model asked for
    assert retried.attempt_count > 1
    assert retried.attempts[0].http_status == 503
    assert later.content
    assert streamed


def test_a_model_that_stays_down_is_answered_by_the_fallback() -> None:
    clock = FakeClock()
    scenario = Scenario(
        name="pro-down",
        default_tier="tier1",
        quotas=False,
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        guard = _guard(server, clock)
        try:
            reply = _chat(server, guard, PRO).invoke("hello")
            info = last_call()
        finally:
            guard.close()
    assert reply.content
    assert reply.response_metadata["model_name"] == FLASH
    assert info is not None
    assert info.model == FLASH
    assert not info.served_by_requested


def test_a_quota_wall_under_the_framework_loses_nothing() -> None:
    clock = ScaledClock(120)
    with serve("free-tier", clock=clock) as server:
        guard = _guard(server, clock, tier="free")
        try:
            llm = _chat(server, guard, FLASH)
            replies = [llm.invoke(f"question {i}") for i in range(14)]  # 10 RPM
        finally:
            guard.close()
        totals = server.emulator.stats()["totals"]
    assert all(r.content for r in replies)
    assert totals["admitted"] == 14
    assert totals["rejected"] == {}
