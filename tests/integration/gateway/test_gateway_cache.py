"""The response cache on the gateway's path, through real HTTP: a repeat is answered
without an upstream request, per token and per upstream project, and never to a key
the API refused. The emulator is the upstream and counts what reaches it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from openai.types.chat import ChatCompletionMessageParam

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve_async
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.cache import sse_events
from gemini_guard.gateway.server import GatewayServer
from gemini_guard.gateway.server import serve_async as serve_gateway
from tests.integration.gateway.conftest import (
    FLASH,
    GOOGLE_KEY,
    PRO,
    TOKEN,
    gateway_config,
)

OTHER_TOKEN = "gg-client-token-other-9c0d1e2f"
OTHER_KEY = "AIzaSyGATEWAYUPSTREAM-other-project-4567"
BAD_KEY = "AIzaSyGATEWAYUPSTREAM-refused-by-google"
ASK = {
    "contents": [{"role": "user", "parts": [{"text": "What is 2 + 2?"}]}],
    "generationConfig": {"temperature": 0},
}
COOL = types.GenerateContentConfig(temperature=0.0)  # what the cache's policy takes
SCENARIO = {
    "name": "gateway-cache",
    "default_tier": "tier1",
    "quotas": False,
    "accept_unknown_keys": False,
    "keys": {
        GOOGLE_KEY: {"project": "team-a"},
        OTHER_KEY: {"project": "team-b"},
        BAD_KEY: {"project": "team-a", "state": "invalid"},
    },
}


@pytest.fixture(autouse=True)
def more_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_OTHER_TOKEN", OTHER_TOKEN)
    monkeypatch.setenv("GATEWAY_TEST_OTHER_KEY", OTHER_KEY)
    monkeypatch.setenv("GATEWAY_TEST_BAD_KEY", BAD_KEY)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with serve_async(SCENARIO, clock=FakeClock()) as server:
        yield server


def seen(server: EmulatorServer, model: str = FLASH) -> int:
    """generateContent requests that reached the emulator for `model`, refused or not."""
    projects = server.emulator.stats()["projects"].values()
    return sum(cells[model]["requests"] for cells in projects if model in cells)


def _config(base_url: str, cache: Any, *, key_env: str, project: str, **extra: Any) -> Any:
    return gateway_config(
        base_url,
        cache=cache,
        projects=[{"name": project, "api_key_env": key_env}],
        gateway={
            "tokens": [
                {"name": "app", "token_env": "GATEWAY_TEST_TOKEN"},
                {"name": "other", "token_env": "GATEWAY_TEST_OTHER_TOKEN"},
            ]
        },
        **extra,
    )


@asynccontextmanager
async def gateway(
    server: EmulatorServer,
    cache: Any = "memory://",
    *,
    key_env: str = "GATEWAY_TEST_GOOGLE_KEY",
    project: str = "team-a",
) -> AsyncIterator[GatewayServer]:
    built, guard = build_gateway(
        _config(server.base_url, cache, key_env=key_env, project=project), clock=FakeClock()
    )
    try:
        async with serve_gateway(built) as running:
            yield running
    finally:
        await built.aclose()
        await guard.aclose()


@asynccontextmanager
async def sdk(running: GatewayServer) -> AsyncIterator[genai.Client]:
    """The SDK pointed at the gateway, with a gateway token as its key."""
    client = genai.Client(api_key=TOKEN, http_options=types.HttpOptions(base_url=running.base_url))
    try:
        yield client
    finally:
        await client.aio.aclose()
        client.close()


async def ask(
    running: GatewayServer, body: dict[str, Any] = ASK, *, token: str = TOKEN, model: str = FLASH
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        return await http.post(
            f"/v1beta/models/{model}:generateContent",
            json=body,
            headers={"x-goog-api-key": token},
        )


async def test_a_repeat_is_answered_by_the_cache_without_an_upstream_request(
    emulator: EmulatorServer,
) -> None:
    async with gateway(emulator) as running:
        first = await ask(running)
        second = await ask(running)
        # Another client, another JSON spelling of the same request: the SDK.
        async with sdk(running) as client:
            third = await client.aio.models.generate_content(
                model=FLASH, contents="What is 2 + 2?", config=COOL
            )
    assert first.status_code == second.status_code == 200
    assert first.headers["x-gemini-guard-cache"] == "miss"
    assert second.headers["x-gemini-guard-cache"] == "hit"
    assert second.headers["x-gemini-guard-model"] == FLASH
    assert second.headers["x-gemini-guard-attempts"] == "0"
    assert second.json() == first.json()  # the API's own answer, as it came
    assert third.text == first.json()["candidates"][0]["content"]["parts"][0]["text"]
    headers = third.sdk_http_response.headers if third.sdk_http_response else None
    assert (headers or {}).get("x-gemini-guard-cache") == "hit"
    assert seen(emulator) == 1


async def test_what_the_policy_does_not_cache_goes_upstream_every_time(
    emulator: EmulatorServer,
) -> None:
    warm = {"contents": ASK["contents"], "generationConfig": {"temperature": 0.7}}
    marked = {"contents": ASK["contents"], "labels": {"gemini-guard-cache": "yes"}}
    async with gateway(emulator) as running:
        replies = [await ask(running, warm) for _ in range(2)]
        labelled = [await ask(running, marked) for _ in range(2)]
    assert all(r.status_code == 200 for r in replies + labelled)
    assert all("x-gemini-guard-cache" not in r.headers for r in replies)
    # A request marked with the cache's label is cached whatever its temperature.
    assert [r.headers["x-gemini-guard-cache"] for r in labelled] == ["miss", "hit"]
    assert seen(emulator) == 3


async def test_two_tokens_never_share_an_answer(emulator: EmulatorServer) -> None:
    async with gateway(emulator) as running:
        mine = await ask(running, token=TOKEN)
        theirs = await ask(running, token=OTHER_TOKEN)
        theirs_again = await ask(running, token=OTHER_TOKEN)
    assert mine.headers["x-gemini-guard-cache"] == "miss"
    assert theirs.headers["x-gemini-guard-cache"] == "miss"  # not the first token's answer
    assert theirs_again.headers["x-gemini-guard-cache"] == "hit"
    assert seen(emulator) == 2


async def test_gateways_of_different_projects_do_not_share_one_store(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with gateway(emulator, store) as team_a:
        assert (await ask(team_a)).headers["x-gemini-guard-cache"] == "miss"
    async with gateway(emulator, store) as team_a_again:  # another replica of team A
        assert (await ask(team_a_again)).headers["x-gemini-guard-cache"] == "hit"
    async with gateway(
        emulator, store, key_env="GATEWAY_TEST_OTHER_KEY", project="team-b"
    ) as team_b:
        reply = await ask(team_b)  # the same token, the same request, another project
    assert reply.status_code == 200
    assert reply.headers["x-gemini-guard-cache"] == "miss"
    assert seen(emulator) == 2
    # Nothing in the store says who asked: no token, no key, not even their digests.
    import hashlib

    stored = (tmp_path / "cache.db").read_bytes()
    for secret in (TOKEN, OTHER_TOKEN, GOOGLE_KEY, OTHER_KEY):
        assert secret.encode() not in stored
        assert hashlib.sha256(secret.encode()).hexdigest().encode() not in stored


async def test_a_refused_key_is_never_answered_from_the_cache(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with gateway(emulator, store) as good:
        await ask(good)
        assert (await ask(good)).headers["x-gemini-guard-cache"] == "hit"
    # The same project name and token, but a key the API refuses: the entry is there
    # for this scope, yet every request goes upstream and gets the API's refusal.
    async with gateway(emulator, store, key_env="GATEWAY_TEST_BAD_KEY") as bad:
        refused = [await ask(bad) for _ in range(2)]
    for reply in refused:
        assert reply.status_code == 400
        assert reply.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        assert "x-gemini-guard-cache" not in reply.headers
    assert seen(emulator) == 3


async def test_a_key_revoked_while_hits_are_served_stops_them(emulator: EmulatorServer) -> None:
    async with gateway(emulator) as running:
        await ask(running)
        assert (await ask(running)).headers["x-gemini-guard-cache"] == "hit"
        keys = dict(emulator.emulator.scenario.keys)
        keys[GOOGLE_KEY] = keys[GOOGLE_KEY].model_copy(update={"state": "leaked"})
        emulator.emulator.scenario = emulator.emulator.scenario.model_copy(update={"keys": keys})
        other = {**ASK, "contents": [{"role": "user", "parts": [{"text": "And 3 + 3?"}]}]}
        assert (await ask(running, other)).status_code == 403  # the API refuses the key now
        repeat = await ask(running)
    assert repeat.status_code == 403  # not the cached answer
    assert repeat.headers.get("x-gemini-guard-cache") != "hit"
    assert seen(emulator) == 3


async def test_a_fallback_answer_is_not_kept() -> None:
    scenario = {
        **SCENARIO,
        "faults": [{"kind": "overloaded", "models": [PRO], "probability": 1.0}],
    }
    async with serve_async(scenario, clock=FakeClock()) as server:
        config = _config(
            server.base_url,
            "memory://",
            key_env="GATEWAY_TEST_GOOGLE_KEY",
            project="team-a",
            models=[PRO, FLASH],
        )
        built, guard = build_gateway(config, clock=FakeClock())
        try:
            async with serve_gateway(built) as running:
                replies = [await ask(running, model=PRO) for _ in range(2)]
        finally:
            await built.aclose()
            await guard.aclose()
    for reply in replies:
        assert reply.status_code == 200
        assert reply.headers["x-gemini-guard-model"] == FLASH
        assert reply.headers["x-gemini-guard-cache"] == "miss"
    assert seen(server, FLASH) == 2  # each answered by the fallback, none from the cache
    assert json.loads(replies[0].content)["modelVersion"] == FLASH


async def stream(running: GatewayServer, *, token: str = TOKEN) -> httpx.Response:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        return await http.post(
            f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse",
            json=ASK,
            headers={"x-goog-api-key": token},
        )


def texts(reply: httpx.Response) -> list[str]:
    """The text of each chunk of a stream of server-sent events."""
    events = sse_events(reply.content)
    assert events is not None, reply.content
    return [json.loads(e)["candidates"][0]["content"]["parts"][0]["text"] for e in events]


async def test_a_repeated_stream_is_replayed_from_the_cache(emulator: EmulatorServer) -> None:
    async with gateway(emulator) as running:
        first = await stream(running)
        async with sdk(running) as client:
            chunks = [
                chunk
                async for chunk in await client.aio.models.generate_content_stream(
                    model=FLASH, contents="What is 2 + 2?", config=COOL
                )
            ]
        again = await stream(running, token=OTHER_TOKEN)  # another token: its own scope
    assert first.status_code == 200
    assert first.headers["x-gemini-guard-cache"] == "miss"
    assert len(texts(first)) > 1  # a real stream, several chunks
    # The SDK reads the replay as the stream it was: the same chunks, in order.
    assert [c.text for c in chunks] == texts(first)
    assert chunks[-1].candidates
    assert chunks[-1].candidates[0].finish_reason == "STOP"
    headers = chunks[0].sdk_http_response.headers if chunks[0].sdk_http_response else {}
    assert (headers or {}).get("x-gemini-guard-cache") == "hit"
    assert again.headers["x-gemini-guard-cache"] == "miss"
    assert seen(emulator) == 2


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_stream_and_a_whole_answer_are_not_served_for_each_other(
    emulator: EmulatorServer, tmp_path: Path, kind: str
) -> None:
    store = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'cache.db'}"
    async with gateway(emulator, store) as running:
        whole = await ask(running)
        streamed = await stream(running)
        whole_again = await ask(running)
        streamed_again = await stream(running)
    verdicts = [r.headers["x-gemini-guard-cache"] for r in (whole, streamed)]
    assert verdicts == ["miss", "miss"]
    assert whole_again.headers["x-gemini-guard-cache"] == "hit"
    assert whole_again.json() == whole.json()
    assert streamed_again.headers["x-gemini-guard-cache"] == "hit"
    assert streamed_again.headers["content-type"].startswith("text/event-stream")
    assert texts(streamed_again) == texts(streamed)
    assert seen(emulator) == 2


async def test_a_stream_that_ends_in_an_error_is_not_kept() -> None:
    scenario = {
        **SCENARIO,
        "faults": [{"kind": "stream_error", "models": [FLASH], "after_chunks": 1}],
    }
    async with serve_async(scenario, clock=FakeClock()) as server, gateway(server) as running:
        replies = [await stream(running) for _ in range(2)]
    for reply in replies:
        assert reply.status_code == 200  # the error came after the first byte
        assert reply.headers["x-gemini-guard-cache"] == "miss"
        events = sse_events(reply.content)
        assert events is not None
        assert "error" in json.loads(events[-1])
    assert seen(server) == 2


async def test_a_repeated_chat_completion_is_answered_by_the_cache(
    emulator: EmulatorServer,
) -> None:
    question: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is 2 + 2?"}]
    async with gateway(emulator) as running:
        client = openai.AsyncOpenAI(
            api_key=TOKEN, base_url=f"{running.base_url}/v1beta/openai/", max_retries=0
        )
        async with client:
            create = client.chat.completions.with_raw_response.create
            first = await create(model=FLASH, messages=question, temperature=0)
            second = await create(model=FLASH, messages=question, temperature=0)
            warm = await create(model=FLASH, messages=question, temperature=0.7)
        gemini = await ask(running)  # the same question on the Gemini surface
    assert first.headers["x-gemini-guard-cache"] == "miss"
    assert second.headers["x-gemini-guard-cache"] == "hit"
    assert second.headers["x-gemini-guard-model"] == FLASH
    assert second.http_response.content == first.http_response.content  # as it came
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert "x-gemini-guard-cache" not in warm.headers  # the policy: temperature 0 only
    assert gemini.headers["x-gemini-guard-cache"] == "miss"  # each surface its own answers
    assert seen(emulator) == 3


async def chat_stream(running: GatewayServer) -> httpx.Response:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        return await http.post(
            "/v1beta/openai/chat/completions",
            json={
                "model": FLASH,
                "messages": [{"role": "user", "content": "What is 2 + 2?"}],
                "temperature": 0,
                "stream": True,
            },
            headers={"authorization": f"Bearer {TOKEN}"},
        )


async def test_a_repeated_streamed_chat_completion_is_replayed_from_the_cache(
    emulator: EmulatorServer,
) -> None:
    async with gateway(emulator) as running:
        first = await chat_stream(running)
        second = await chat_stream(running)
        client = openai.AsyncOpenAI(
            api_key=TOKEN, base_url=f"{running.base_url}/v1beta/openai/", max_retries=0
        )
        async with client:
            question: list[ChatCompletionMessageParam] = [
                {"role": "user", "content": "What is 2 + 2?"}
            ]
            raw = await client.chat.completions.with_raw_response.create(
                model=FLASH, messages=question, temperature=0, stream=True
            )
            pieces = [
                chunk.choices[0].delta.content or "" async for chunk in raw.parse() if chunk.choices
            ]
    events = sse_events(first.content)
    assert events is not None
    assert events[-1] == b"[DONE]"
    assert [r.headers["x-gemini-guard-cache"] for r in (first, second)] == ["miss", "hit"]
    assert sse_events(second.content) == events  # the same events, in order
    assert raw.headers["x-gemini-guard-cache"] == "hit"
    said = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if json.loads(e)["choices"]
    )
    assert "".join(pieces) == said  # the OpenAI SDK reads the replay as a stream
    assert seen(emulator) == 1


async def test_a_streamed_chat_completion_ending_in_an_error_is_not_kept() -> None:
    scenario = {
        **SCENARIO,
        "faults": [{"kind": "stream_error", "models": [FLASH], "after_chunks": 1}],
    }
    async with serve_async(scenario, clock=FakeClock()) as server, gateway(server) as running:
        replies = [await chat_stream(running) for _ in range(2)]
    for reply in replies:
        assert reply.status_code == 200
        assert reply.headers["x-gemini-guard-cache"] == "miss"
        events = sse_events(reply.content)
        assert events is not None
        assert any(e.startswith(b'{"error"') for e in events)  # then [DONE], as sent
    assert seen(server) == 2
