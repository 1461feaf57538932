"""`guard.models` sends through `guard.client`'s HTTP path: the answers it returns were
built by the SDK from the path's reply (its headers say which model answered, after how
many attempts), one Guard's calls share one set of ledgers and breakers whichever way
they come in, and its asyncio sessions close with the loop that opened them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import Iterator

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import AttemptsExhausted
from gemini_guard.guard import Guard, guard_info
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    scenario = Scenario.model_validate(
        {
            "name": "one-path",
            "default_tier": "tier1",
            "quotas": False,
            "faults": [{"kind": "overloaded", "models": [PRO]}],
        }
    )
    with serve(scenario, clock=FakeClock()) as running:
        yield running


def _guard(server: EmulatorServer) -> Guard:
    return Guard(
        client=emulator_client(server, "one-path-key"),
        models=[FLASH],
        clock=FakeClock(),
        seed=2,
        log=False,
    )


def test_a_typed_answer_carries_the_paths_headers(server: EmulatorServer) -> None:
    guard = _guard(server)
    response = guard.models.generate_content(model=PRO, contents="Say hello.")
    assert response.text
    http = response.sdk_http_response
    assert http is not None
    assert http.headers is not None
    assert http.headers["x-gemini-guard-model"] == FLASH  # pro is down: the fallback
    info = guard_info(response)
    assert info is not None
    assert http.headers["x-gemini-guard-attempts"] == str(info.attempt_count)
    assert info.attempt_count > 1


def test_one_guards_calls_share_breakers_whichever_way_they_come(
    server: EmulatorServer,
) -> None:
    """pro fails through `guard.client` until its breaker opens; `guard.models` then
    finds it open and sends nothing to pro (one engine, one set of breakers)."""
    guard = _guard(server)
    for _ in range(8):
        guard.client.models.generate_content(model=PRO, contents="Say hello.")
    stats = server.emulator.stats()["projects"]
    sent_to_pro = sum(models.get(PRO, {}).get("requests", 0) for models in stats.values())
    response = guard.models.generate_content(model=PRO, contents="Say hello.")
    info = guard_info(response)
    assert info is not None
    assert info.model == FLASH
    assert not any(a.model == PRO and a.sent for a in info.attempts)
    stats = server.emulator.stats()["projects"]
    assert sum(models.get(PRO, {}).get("requests", 0) for models in stats.values()) == (sent_to_pro)


def test_errors_are_the_guards_and_the_sdks(server: EmulatorServer) -> None:
    from google.genai import errors as sdk

    guard = Guard(
        client=emulator_client(server, "one-path-key"),
        clock=FakeClock(),
        seed=2,
        log=False,
    )
    with pytest.raises(AttemptsExhausted) as caught:
        guard.models.generate_content(model=PRO, contents="Say hello.")
    assert isinstance(caught.value, sdk.ServerError)
    assert caught.value.code == 503


def test_sessions_close_with_the_loop_that_opened_them(server: EmulatorServer) -> None:
    """A Guard used inside `asyncio.run` and never closed leaves no socket open for
    the collector to find (as the SDK's own client would: it warns)."""
    guard = _guard(server)

    async def main(guard: Guard) -> str | None:
        answer = await guard.aio.models.generate_content(model=FLASH, contents="Say hello.")
        return answer.text

    assert asyncio.run(main(guard))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        guard.close()
        del guard
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


@contextlib.contextmanager
def _cycles() -> Iterator[list[str]]:
    """The HTTP objects the block leaves in reference cycles: freed only by the
    collector, whose passes then cost every call of a busy process."""
    left: list[str] = []
    gc.collect()
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield left
        gc.collect()
    finally:
        gc.set_debug(0)
        left.extend(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.split(".")[0] in ("httpx", "aiohttp", "gemini_guard")
        )
        gc.garbage.clear()


def test_answers_leave_no_reference_cycle(server: EmulatorServer) -> None:
    guard = _guard(server)

    def sync_calls() -> None:
        assert guard.models.generate_content(model=FLASH, contents="Say hello.").text
        assert guard.client.models.generate_content(model=FLASH, contents="Say hello.").text
        chunks = guard.client.models.generate_content_stream(model=FLASH, contents="Count.")
        assert "".join(chunk.text or "" for chunk in chunks)

    async def async_calls() -> None:
        answer = await guard.aio.models.generate_content(model=FLASH, contents="Say hello.")
        assert answer.text
        models = guard.client.aio.models
        assert (await models.generate_content(model=FLASH, contents="Say hello.")).text
        text = ""
        async for chunk in await models.generate_content_stream(model=FLASH, contents="Count."):
            text += chunk.text or ""
        assert text

    async def measured_async() -> list[str]:
        await async_calls()  # first calls build what lives on (this loop's sessions)
        with _cycles() as left:
            await async_calls()
        return left

    try:
        sync_calls()
        with _cycles() as left:
            sync_calls()
        assert left == []
        assert asyncio.run(measured_async()) == []
    finally:
        guard.close()
