"""The response cache in a Guard, with the real SDK against the emulator on loopback."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from gemini_guard.cache import CACHE_LABEL, CacheConfig, CacheHit, CacheStored
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import CallFailed
from gemini_guard.guard import Guard, last_call
from gemini_guard.policies import RetryPolicy
from gemini_guard.telemetry import Event
from tests.support.sdk_clients import emulator_client

FLASH = "gemini-2.5-flash"
KEY = "AIzaSyCACHETESTKEY-never-stored-0123456789"
DETERMINISTIC: types.GenerateContentConfigDict = {"temperature": 0}


def client_for(server: EmulatorServer, key: str = KEY) -> genai.Client:
    return emulator_client(server, key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve(Scenario(name="cache", default_tier="tier1"), clock=clock) as running:
        yield running


def requests_seen(server: EmulatorServer) -> int:
    return int(server.emulator.stats()["totals"]["requests"])


def guard(server: EmulatorServer, clock: FakeClock, cache: object, **options: object) -> Guard:
    return Guard(client=client_for(server), clock=clock, cache=cache, log=False, **options)  # type: ignore[arg-type]


def test_a_repeated_request_reaches_the_api_once(server: EmulatorServer, clock: FakeClock) -> None:
    events: list[Event] = []
    g = guard(server, clock, "memory://", hooks=[events.append])
    first = g.models.generate_content(model=FLASH, contents="tell me", config=DETERMINISTIC)
    again = g.models.generate_content(
        model=f"models/{FLASH}",
        contents=[{"role": "user", "parts": [{"text": "tell me"}]}],
        config=types.GenerateContentConfig(temperature=0.0),
    )
    assert requests_seen(server) == 1
    assert isinstance(again, types.GenerateContentResponse)
    assert again.text == first.text
    assert again.model_version == first.model_version
    info = last_call()
    assert info is not None
    assert info.call_id == "cache"
    assert info.attempt_count == 0
    assert g.cache is not None
    stats = g.cache.stats()
    assert (stats.hits, stats.misses, stats.stored) == (1, 1, 1)
    assert stats.tokens_saved > 0
    assert stats.dollars_saved > 0
    assert [type(e) for e in events if isinstance(e, CacheHit | CacheStored)] == [
        CacheStored,
        CacheHit,
    ]


def test_non_deterministic_calls_are_sent_unless_marked(
    server: EmulatorServer, clock: FakeClock
) -> None:
    g = guard(server, clock, "memory://")
    for _ in range(2):
        g.models.generate_content(model=FLASH, contents="creative", config={"temperature": 1})
    assert requests_seen(server) == 2
    marked: types.GenerateContentConfigDict = {"temperature": 1, "labels": {CACHE_LABEL: "yes"}}
    for _ in range(2):
        g.models.generate_content(model=FLASH, contents="creative", config=marked)
    assert requests_seen(server) == 3  # the label is stripped: the emulator accepted it


def test_ttl_expiry(server: EmulatorServer, clock: FakeClock) -> None:
    g = guard(server, clock, CacheConfig(ttl=600))
    g.models.generate_content(model=FLASH, contents="q", config=DETERMINISTIC)
    clock.advance(599)
    g.models.generate_content(model=FLASH, contents="q", config=DETERMINISTIC)
    assert requests_seen(server) == 1
    clock.advance(1)
    g.models.generate_content(model=FLASH, contents="q", config=DETERMINISTIC)
    assert requests_seen(server) == 2


def test_the_lru_bound(server: EmulatorServer, clock: FakeClock) -> None:
    g = guard(server, clock, CacheConfig(max_entries=2))
    for prompt in ("a", "b", "a", "c", "a", "b"):
        g.models.generate_content(model=FLASH, contents=prompt, config=DETERMINISTIC)
    # a, b sent; a hit; c sent (evicts b); a hit; b sent again.
    assert requests_seen(server) == 4


def test_two_projects_never_share_an_entry(
    server: EmulatorServer, clock: FakeClock, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    alpha = guard(server, clock, url, project="alpha")
    beta = guard(server, clock, url, project="beta")
    alpha.models.generate_content(model=FLASH, contents="same", config=DETERMINISTIC)
    beta.models.generate_content(model=FLASH, contents="same", config=DETERMINISTIC)
    assert requests_seen(server) == 2
    alpha2 = guard(server, clock, url, project="alpha")  # another handle on the same file
    alpha2.models.generate_content(model=FLASH, contents="same", config=DETERMINISTIC)
    assert requests_seen(server) == 2
    with sqlite3.connect(tmp_path / "cache.db") as db:
        rows = db.execute("SELECT key, value FROM response_cache").fetchall()
    # Two scopes, each named by a digest: the project names are not written.
    scopes = {k.split("/")[0] for k, _ in rows}
    assert len(scopes) == 2
    for stored_key, value in rows:
        assert "alpha" not in stored_key
        assert "beta" not in stored_key
        assert KEY not in stored_key
        assert KEY.encode() not in bytes(value)


def test_errors_are_never_cached(clock: FakeClock) -> None:
    scenario = Scenario(
        name="down",
        default_tier="tier1",
        faults=({"kind": "internal", "models": (FLASH,), "probability": 1.0},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as down:
        g = guard(down, clock, "memory://", retry=RetryPolicy.DEFAULT.with_options(max_retries=0))
        for _ in range(2):
            with pytest.raises(CallFailed):
                g.models.generate_content(model=FLASH, contents="x", config=DETERMINISTIC)
        assert requests_seen(down) == 2
        assert g.cache is not None
        assert g.cache.stats().stored == 0


def test_a_stream_is_stored_once_complete_and_replayed(
    server: EmulatorServer, clock: FakeClock
) -> None:
    g = guard(server, clock, "memory://")
    live = list(
        g.models.generate_content_stream(model=FLASH, contents="long one", config=DETERMINISTIC)
    )
    replay = list(
        g.models.generate_content_stream(model=FLASH, contents="long one", config=DETERMINISTIC)
    )
    assert requests_seen(server) == 1
    assert len(replay) == len(live) > 1
    assert [c.text for c in replay] == [c.text for c in live]
    assert all(isinstance(c, types.GenerateContentResponse) for c in replay)


def test_an_abandoned_stream_is_not_stored(server: EmulatorServer, clock: FakeClock) -> None:
    g = guard(server, clock, "memory://")
    stream = g.models.generate_content_stream(
        model=FLASH, contents="long one", config=DETERMINISTIC
    )
    next(iter(stream))
    stream.close()  # type: ignore[attr-defined]
    list(g.models.generate_content_stream(model=FLASH, contents="long one", config=DETERMINISTIC))
    assert requests_seen(server) == 2


async def test_async_hits_and_async_streams(server: EmulatorServer, clock: FakeClock) -> None:
    g = guard(server, clock, "memory://")
    first = await g.aio.models.generate_content(model=FLASH, contents="a", config=DETERMINISTIC)
    again = await g.aio.models.generate_content(model=FLASH, contents="a", config=DETERMINISTIC)
    assert again.text == first.text
    chunks = [
        c
        async for c in await g.aio.models.generate_content_stream(
            model=FLASH, contents="s", config=DETERMINISTIC
        )
    ]
    replay = [
        c
        async for c in await g.aio.models.generate_content_stream(
            model=FLASH, contents="s", config=DETERMINISTIC
        )
    ]
    assert [c.text for c in replay] == [c.text for c in chunks]
    assert requests_seen(server) == 2


def test_fifty_threads_make_one_upstream_call(server: EmulatorServer, clock: FakeClock) -> None:
    g = guard(server, clock, "memory://")
    start = threading.Barrier(50)
    texts: list[str | None] = []

    def worker() -> None:
        start.wait()
        response = g.models.generate_content(model=FLASH, contents="herd", config=DETERMINISTIC)
        texts.append(response.text)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert requests_seen(server) == 1
    assert len(texts) == 50
    assert len(set(texts)) == 1
    assert g.cache is not None
    stats = g.cache.stats()
    assert stats.misses == 1
    assert stats.hits + stats.coalesced == 49


async def test_fifty_tasks_make_one_upstream_call(server: EmulatorServer, clock: FakeClock) -> None:
    g = guard(server, clock, "memory://")
    responses = await asyncio.gather(
        *(
            g.aio.models.generate_content(model=FLASH, contents="herd", config=DETERMINISTIC)
            for _ in range(50)
        )
    )
    assert requests_seen(server) == 1
    assert len({r.text for r in responses}) == 1
    assert len({id(r) for r in responses}) == 50  # each caller has its own object
    assert g.cache is not None
    assert g.cache.stats().coalesced == 49


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_changing_a_hit_does_not_change_the_next_one(
    server: EmulatorServer, clock: FakeClock, tmp_path: Path, kind: str
) -> None:
    url = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'cache.db'}"
    g = guard(server, clock, url)
    first = g.models.generate_content(model=FLASH, contents="mutate me", config=DETERMINISTIC)
    hit = g.models.generate_content(model=FLASH, contents="mutate me", config=DETERMINISTIC)
    assert hit == g.models.generate_content(model=FLASH, contents="mutate me", config=DETERMINISTIC)
    assert hit.candidates is not None
    assert hit.usage_metadata is not None
    hit.candidates[0].content.parts[0].text = "tampered"  # type: ignore[union-attr,index]
    hit.candidates.append(hit.candidates[0])
    hit.usage_metadata.prompt_token_count = 10**6
    again = g.models.generate_content(model=FLASH, contents="mutate me", config=DETERMINISTIC)
    assert again is not hit
    assert again.text == first.text
    assert again.candidates is not None
    assert len(again.candidates) == 1
    assert again.usage_metadata is not None
    assert again.usage_metadata.prompt_token_count == first.usage_metadata.prompt_token_count  # type: ignore[union-attr]
    assert requests_seen(server) == 1
    assert g.cache is not None
    stats = g.cache.stats()
    assert stats.hits == 3
    # Savings are the first answer's, counted once per hit.
    assert stats.tokens_saved == 3 * first.usage_metadata.total_token_count  # type: ignore[union-attr,operator]


def test_a_memory_store_shared_with_bytes_still_answers(
    server: EmulatorServer, clock: FakeClock
) -> None:
    from gemini_guard.cache import ResponseCache, codec
    from gemini_guard.cache.scope import guard_scope
    from gemini_guard.cache.stores.memory import MemoryCacheStore

    store: MemoryCacheStore[bytes] = MemoryCacheStore()
    g = guard(server, clock, ResponseCache("memory://", clock=clock, store=store))
    live = g.models.generate_content(model=FLASH, contents="shared", config=DETERMINISTIC)
    assert g.cache is not None
    scope = guard_scope("project", client=g.unguarded_client, project="default")
    key = g.cache.scope_key(scope, FLASH, "put", DETERMINISTIC)
    assert key is not None
    # Another user of the same store puts the stored form itself.
    store.put(
        key, codec.encode(model=FLASH, responses=[live], stream=False), now=clock.time(), ttl=60
    )
    hit = g.models.generate_content(model=FLASH, contents="put", config=DETERMINISTIC)
    assert hit.text == live.text
    assert requests_seen(server) == 1
