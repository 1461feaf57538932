"""The gateway with the Guard behind it: any client gets retries, fallback and pacing
by changing its base URL. The emulator is the upstream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from gemini_guard.clock import FakeClock, ScaledClock, SystemClock
from gemini_guard.emulator import serve_async
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.server import serve_async as serve_gateway
from tests.integration.gateway.conftest import (
    FLASH,
    GOOGLE_KEY,
    PRO,
    TOKEN,
    Stack,
    gateway_config,
    gateway_stack,
)
from tests.support.binaries import require_binary
from tests.support.chromium import visit
from tests.support.redis_server import RedisServer


@pytest.fixture
async def pro_down() -> AsyncIterator[Stack]:
    scenario = {
        "name": "pro-down",
        "default_tier": "tier1",
        "quotas": False,
        "faults": [{"kind": "overloaded", "models": [PRO], "probability": 1.0}],
    }
    async for stack in gateway_stack(scenario, FakeClock()):
        yield stack


def _sdk(stack: Stack) -> genai.Client:
    return genai.Client(
        api_key=TOKEN, http_options=types.HttpOptions(base_url=stack.gateway.base_url)
    )


async def test_an_sdk_behind_the_gateway_is_answered_by_the_fallback(pro_down: Stack) -> None:
    client = _sdk(pro_down)
    try:
        answer = await client.aio.models.generate_content(model=PRO, contents="hi")
        stream = await client.aio.models.generate_content_stream(model=PRO, contents="hi")
        text = "".join([c.text or "" async for c in stream])
    finally:
        await client.aio.aclose()
        client.close()
    headers = answer.sdk_http_response.headers if answer.sdk_http_response else {}
    assert answer.model_version == FLASH
    assert (headers or {}).get("x-gemini-guard-model") == FLASH
    assert text == answer.text
    # A breaker keeps the dead model from being asked again and again.
    assert pro_down.upstream(PRO)["requests"] <= 8
    assert pro_down.upstream(FLASH)["admitted"] == 2


async def test_the_access_log_tells_which_model_answered_and_after_how_many_attempts(
    pro_down: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{pro_down.gateway.base_url}/v1beta/models/{PRO}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    with caplog.at_level(logging.INFO, logger="gemini_guard.gateway.access"):
        async with httpx.AsyncClient() as http:
            answer = await http.post(url, json=body, headers={"x-goog-api-key": TOKEN})
    assert answer.status_code == 200
    [line] = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "gemini_guard.gateway.access"
    ]
    assert (line["model"], line["served_by"]) == (PRO, FLASH)
    assert line["attempts"] == answer.headers["x-gemini-guard-attempts"]
    assert int(line["attempts"]) >= 2  # pro failed, then flash answered
    assert line["cache"] is None  # no cache configured


async def test_the_openai_sdk_behind_the_gateway_falls_back_too(pro_down: Stack) -> None:
    client = openai.AsyncOpenAI(
        api_key=TOKEN, base_url=f"{pro_down.gateway.base_url}/v1beta/openai/", max_retries=0
    )
    async with client:
        completion = await client.chat.completions.create(
            model=PRO, messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.model == FLASH  # fallback rewrote the model in the JSON body
    assert completion.choices[0].message.content


async def test_errors_reach_the_client_as_google_sent_them_or_as_the_gateway_saw_them(
    pro_down: Stack,
) -> None:
    client = _sdk(pro_down)
    before = pro_down.emulator.emulator.stats()["totals"]["requests"]
    try:
        with pytest.raises(errors.ClientError) as missing:  # countTokens: its own model only
            await client.aio.models.count_tokens(model="gemini-0-nothing", contents="hi")
        sent = pro_down.emulator.emulator.stats()["totals"]["requests"] - before
        with pytest.raises(errors.ClientError) as invalid:  # refused before it is sent
            await client.aio.models.generate_content(
                model=FLASH, contents="hi", config=types.GenerateContentConfig(temperature=3.5)
            )
    finally:
        await client.aio.aclose()
        client.close()
    assert missing.value.code == 404
    assert "gemini-0-nothing" in (missing.value.message or "")
    assert GOOGLE_KEY not in str(missing.value.details)
    assert invalid.value.code == 400
    assert "temperature" in (invalid.value.message or "")
    assert pro_down.emulator.emulator.stats()["totals"]["requests"] - before == sent


async def test_a_quota_wall_behind_the_gateway_draws_no_429() -> None:
    clock = ScaledClock(120)
    async for stack in gateway_stack("free-tier", clock, tier="free"):
        async with httpx.AsyncClient(headers={"x-goog-api-key": TOKEN}, timeout=60) as http:
            url = f"{stack.gateway.base_url}/v1beta/models/{FLASH}:generateContent"
            body = {"contents": [{"parts": [{"text": "hi"}]}]}
            replies = await asyncio.gather(*(http.post(url, json=body) for _ in range(20)))
        assert [r.status_code for r in replies] == [200] * 20
        assert stack.upstream(FLASH)["rejected"] == {}
        assert stack.upstream(FLASH)["admitted"] == 20


async def test_two_gateways_sharing_redis_hold_one_quota(redis_server: RedisServer) -> None:
    # Two replicas, each with its own Guard, share only the store: 30 requests at a
    # 10 RPM model, spread over both, draw no upstream 429 and lose nothing.
    clock = ScaledClock(120)
    async with serve_async("free-tier", clock=clock) as emulator:
        config = gateway_config(emulator.base_url, tier="free", store=redis_server.url)
        first, first_guard = build_gateway(config, clock=clock)
        second, second_guard = build_gateway(config, clock=clock)
        try:
            async with (
                serve_gateway(first) as one,
                serve_gateway(second) as two,
                httpx.AsyncClient(headers={"x-goog-api-key": TOKEN}, timeout=120) as http,
            ):
                body = {"contents": [{"parts": [{"text": "hi"}]}]}
                urls = [
                    f"{server.base_url}/v1beta/models/{FLASH}:generateContent"
                    for server in (one, two)
                ]
                replies = await asyncio.gather(
                    *(http.post(urls[i % 2], json=body) for i in range(30))
                )
            stack = Stack(emulator, one)
            assert [r.status_code for r in replies] == [200] * 30
            assert {r.headers["x-gemini-guard-model"] for r in replies} == {FLASH}
            assert stack.upstream(FLASH)["rejected"] == {}
            assert stack.upstream(FLASH)["admitted"] == 30
        finally:
            for gateway, guard in ((first, first_guard), (second, second_guard)):
                await gateway.aclose()
                await guard.aclose()


@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cacheable"])
async def test_a_client_gone_mid_stream_closes_the_upstream_connection(cached: bool) -> None:
    # The upstream sends one chunk, then goes quiet for 30 s: a client that leaves
    # after the first chunk must not leave the gateway holding the upstream request.
    # A cacheable stream is relayed through the cache's recorder: the same holds.
    scenario = {
        "name": "slow-stream",
        "quotas": False,
        "default_tier": "tier1",
        "stream_chunk_tokens": 2,
        "faults": [
            {
                "kind": "stall_mid_stream",
                "probability": 1.0,
                "delay": 30.0,
                "after_chunks": 1,
                "methods": ["streamGenerateContent"],
            }
        ],
    }
    extra: dict[str, Any] = {"cache": "memory://"} if cached else {}
    async for stack in gateway_stack(scenario, SystemClock(), **extra):
        upstream = stack.emulator.emulator.connections
        url = f"{stack.gateway.base_url}/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
        body: dict[str, Any] = {"contents": [{"parts": [{"text": "tell me a long story"}]}]}
        if cached:
            body["generationConfig"] = {"temperature": 0}
        async with (
            httpx.AsyncClient(headers={"x-goog-api-key": TOKEN}) as http,
            http.stream("POST", url, json=body) as reply,
        ):
            assert reply.status_code == 200
            assert reply.headers.get("x-gemini-guard-cache") == ("miss" if cached else None)
            first = await anext(aiter(reply.aiter_lines()))
            assert first.startswith("data: ")
            assert len(upstream) == 1  # the gateway's request, held open upstream
        # The client is gone; the upstream connection closes long before the stall ends.
        for _ in range(500):
            if not upstream:
                break
            await asyncio.sleep(0.01)
        assert not upstream


async def test_metrics_and_the_status_page_tell_what_the_gateway_did() -> None:
    scenario = {
        "name": "pro-down",
        "default_tier": "tier1",
        "quotas": False,
        "faults": [{"kind": "overloaded", "models": [PRO], "probability": 1.0}],
    }
    async for stack in gateway_stack(
        scenario, FakeClock(), telemetry={"log": False, "metrics": True}
    ):
        async with httpx.AsyncClient(headers={"x-goog-api-key": TOKEN}) as http:
            url = f"{stack.gateway.base_url}/v1beta/models/{PRO}:generateContent"
            body = {"contents": [{"parts": [{"text": "hi"}]}]}
            replies = [await http.post(url, json=body) for _ in range(3)]
            metrics = await http.get(f"{stack.gateway.base_url}/metrics")
            status = await http.get(f"{stack.gateway.base_url}/status")
        assert [r.status_code for r in replies] == [200] * 3
        assert metrics.status_code == 200
        exposed = metrics.text
        assert (
            'gemini_guard_requests_total{category="none",model="gemini-2.5-flash",'
            'outcome="success"} 3.0' in exposed
        )
        assert 'gemini_guard_fallbacks_total{from_model="gemini-2.5-pro"' in exposed
        assert GOOGLE_KEY not in exposed
        assert TOKEN not in exposed
        assert status.status_code == 200
        assert status.headers["content-type"].startswith("text/html")
        assert 'http-equiv="refresh"' in status.text
        assert FLASH in status.text
        assert "<script src=" not in status.text  # self-contained: no external assets


async def test_the_status_page_renders_offline_in_a_real_browser(tmp_path: Path) -> None:
    chromium = require_binary("chromium", why="to render the gateway's status page")
    scenario = {
        "name": "pro-down",
        "default_tier": "tier1",
        "quotas": False,
        "faults": [{"kind": "overloaded", "models": [PRO], "probability": 1.0}],
    }
    async for stack in gateway_stack(scenario, FakeClock()):
        async with httpx.AsyncClient(headers={"x-goog-api-key": TOKEN}) as http:
            url = f"{stack.gateway.base_url}/v1beta/models/{PRO}:generateContent"
            body = {"contents": [{"parts": [{"text": "hi"}]}]}
            for _ in range(4):
                assert (await http.post(url, json=body)).status_code == 200
            status = await http.get(f"{stack.gateway.base_url}/status")
    page = tmp_path / "status.html"
    page.write_text(status.text, encoding="utf-8")
    shot = tmp_path / "status.png"
    charts = "[...document.querySelectorAll('svg[data-chart]')].map(s => s.dataset.chart)"
    legend = "[...document.querySelectorAll('.legend li')].map(li => li.textContent)"
    seen = await asyncio.to_thread(
        visit, chromium, page, evaluate=(charts, legend), screenshot=shot, width=420, height=900
    )
    assert seen.requests == []  # no external assets: it works offline, on a phone
    assert seen.console_errors == []
    assert seen.exceptions == []
    assert set(seen.values[charts]) >= {"requests", "errors", "fallbacks"}
    assert any(FLASH in entry for entry in seen.values[legend])
    assert shot.stat().st_size > 10_000


async def test_250_embeddings_behind_the_gateway_are_paced_by_item_and_come_back_whole() -> None:
    # The free tier's embedding model takes 100 requests a minute, each item one:
    # 250 items go as parts of 100, 100 and 50, a minute apart, and none is refused.
    clock = ScaledClock(120)
    model = "gemini-embedding-001"
    # A part's answer is 100 vectors of 3,072 numbers: at 120x, the default attempt
    # timeout (60 s) is half a real second, which a busy machine can take to make and
    # read it. Pacing is what is tested here, not the timeout.
    retry = {"attempt_timeout": 1200}
    async for stack in gateway_stack("free-tier", clock, tier="free", retry=retry):
        async with httpx.AsyncClient(headers={"x-goog-api-key": TOKEN}, timeout=60) as http:
            url = f"{stack.gateway.base_url}/v1beta/models/{model}:batchEmbedContents"
            items = [
                {"model": f"models/{model}", "content": {"parts": [{"text": f"t{i}"}]}}
                for i in range(250)
            ]
            started = clock.monotonic()
            reply = await http.post(url, json={"requests": items})
            took = clock.monotonic() - started
            one = await http.post(url, json={"requests": items[-1:]})
        assert reply.status_code == 200
        embeddings = reply.json()["embeddings"]
        assert len(embeddings) == 250
        assert embeddings[-1] == one.json()["embeddings"][0]
        assert stack.upstream(model)["rejected"] == {}
        assert stack.upstream(model)["admitted"] == 3 + 1
        assert took >= 120.0  # two minute windows waited out, not 429s
