"""Context caching against the emulator with the real SDK: create, use, refresh, delete."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types

from gemini_guard.cache import CacheConfig, ContextCacheChanged
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard
from gemini_guard.telemetry import Event
from gemini_guard.tiers import model_spec
from tests.support.sdk_clients import keep_open

FLASH = "gemini-2.5-flash"
MANUAL = "The operating manual says: " + "always check the valve pressure first. " * 150
HISTORY = [
    {"role": "user", "parts": [{"text": "I have a question about the pump."}]},
    {"role": "model", "parts": [{"text": "Go ahead."}]},
]
CONFIG: types.GenerateContentConfigDict = {"temperature": 1, "system_instruction": MANUAL}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve(Scenario(name="ctx", default_tier="tier1"), clock=clock) as running:
        yield running


def make_guard(
    server: EmulatorServer, clock: FakeClock, events: list[Event]
) -> tuple[Guard, genai.Client]:
    client = genai.Client(
        api_key="AIzaSyCTX-0123456789", http_options=types.HttpOptions(base_url=server.base_url)
    )
    keep_open(client)
    config = CacheConfig(context=True, context_ttl=600, context_refresh=60, policy="off")
    return Guard(client=client, clock=clock, cache=config, hooks=[events.append], log=False), client


def ask(g: Guard, question: str) -> types.GenerateContentResponse:
    contents = [*HISTORY, {"role": "user", "parts": [{"text": question}]}]
    return g.models.generate_content(model=FLASH, contents=contents, config=CONFIG)


def actions(events: list[Event]) -> list[str]:
    return [e.action for e in events if isinstance(e, ContextCacheChanged)]


def test_context_cache_lifecycle(server: EmulatorServer, clock: FakeClock) -> None:
    events: list[Event] = []
    g, client = make_guard(server, clock, events)
    assert g.cache is not None

    first = ask(g, "What first?")  # seen once: sent whole
    assert not (first.usage_metadata and first.usage_metadata.cached_content_token_count)
    assert actions(events) == []

    second = ask(g, "And then?")  # repeats: cached, then used
    assert actions(events) == ["created", "used"]
    usage = second.usage_metadata
    assert usage is not None
    assert (usage.cached_content_token_count or 0) > 1000
    live = list(client.caches.list())
    assert len(live) == 1
    assert live[0].model == f"models/{FLASH}"

    ask(g, "Anything else?")  # still alive: used, nothing created
    assert actions(events)[-1] == "used"
    assert actions(events).count("created") == 1

    clock.advance(545)  # 55 s left, under the 60 s margin: refreshed before use
    ask(g, "Later question")
    assert actions(events)[-2:] == ["refreshed", "used"]
    refreshed = client.caches.get(name=live[0].name or "")
    assert refreshed.expire_time is not None
    assert refreshed.expire_time.timestamp() == pytest.approx(clock.time() + 600, abs=1)

    clock.advance(601)  # expired on the server: made anew
    ask(g, "Much later")
    assert actions(events)[-2:] == ["created", "used"]

    stats = g.cache.stats()
    assert (stats.context_created, stats.context_refreshed, stats.context_uses) == (2, 1, 4)
    spec = model_spec(FLASH)
    assert spec is not None
    assert spec.price is not None
    expected = stats.context_tokens * (spec.price.input - spec.price.cached_input) / 1e6
    assert stats.context_dollars_saved == pytest.approx(expected)
    assert server.emulator.stats()["totals"]["cached_tokens"] == stats.context_tokens

    g.cache.close()  # deletes what it made
    assert list(client.caches.list()) == []
    assert g.cache.stats().context_deleted == 1  # the expired first one was already gone


def test_short_prefixes_are_never_cached(server: EmulatorServer, clock: FakeClock) -> None:
    events: list[Event] = []
    g, client = make_guard(server, clock, events)
    for _ in range(3):
        g.models.generate_content(
            model=FLASH,
            contents=[*HISTORY, "short?"],
            config={"temperature": 1, "system_instruction": "brief"},
        )
    assert actions(events) == []
    assert list(client.caches.list()) == []


async def test_async_context_cache(server: EmulatorServer, clock: FakeClock) -> None:
    events: list[Event] = []
    g, client = make_guard(server, clock, events)
    contents = [*HISTORY, {"role": "user", "parts": [{"text": "q"}]}]
    for _ in range(3):
        await g.aio.models.generate_content(model=FLASH, contents=contents, config=CONFIG)
    assert actions(events) == ["created", "used", "used"]
    assert g.cache is not None
    await g.cache.aclose()
    assert actions(events)[-1] == "deleted"
    assert [c async for c in await client.aio.caches.list()] == []
