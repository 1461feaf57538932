"""The gateway's front: real clients with gateway tokens, the emulator behind it.

The upstream transport here is a plain pass-through (`AiohttpTransport`): these tests
pin what the gateway checks and relays itself; the guarded path behind it is tested
on its own.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from gemini_guard.call.aiohttp_transport import AiohttpTransport
from gemini_guard.clock import FakeClock
from gemini_guard.config import GatewaySection, GatewayTokenSection
from gemini_guard.emulator import EmulatorServer, serve_async
from gemini_guard.gateway.app import Gateway
from gemini_guard.gateway.auth import TokenTable
from gemini_guard.gateway.budgets import CallerBudgets
from gemini_guard.gateway.server import GatewayServer
from gemini_guard.gateway.server import serve_async as serve_gateway

TEAM = "gg-team-7d1f0c2e"
FLASH_ONLY = "gg-flash-55aa10b3"
UPSTREAM_KEY = "upstream-key-do-not-leak"


@dataclass
class Stack:
    emulator: EmulatorServer
    gateway: GatewayServer

    def requests_seen(self) -> int:
        return int(self.emulator.emulator.stats()["totals"]["requests"])


def _tokens() -> TokenTable:
    section = GatewaySection(
        tokens=(
            GatewayTokenSection(name="team", token_env="TEAM_TOKEN", rpm=5),
            GatewayTokenSection(
                name="flash-only", token_env="FLASH_TOKEN", models=("gemini-2.5-flash",)
            ),
        )
    )
    return TokenTable.from_section(section, environ={"TEAM_TOKEN": TEAM, "FLASH_TOKEN": FLASH_ONLY})


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    clock = FakeClock()
    tokens = _tokens()
    async with serve_async({"name": "gw", "quotas": False}, clock=clock) as emulator:
        gateway = Gateway(
            tokens=tokens,
            transport=AiohttpTransport(),
            base_url=emulator.base_url,
            upstream_key=UPSTREAM_KEY,
            budgets=CallerBudgets(
                [c for c in (tokens.authenticate(TEAM), tokens.authenticate(FLASH_ONLY)) if c],
                store="memory://",
                clock=clock,
            ),
            max_body_bytes=64 * 1024,
        )
        try:
            async with serve_gateway(gateway) as server:
                yield Stack(emulator, server)
        finally:
            await gateway.aclose()


def _sdk(stack: Stack, token: str) -> genai.Client:
    return genai.Client(
        api_key=token, http_options=types.HttpOptions(base_url=stack.gateway.base_url)
    )


async def test_the_sdk_works_through_the_gateway_with_a_token(stack: Stack) -> None:
    client = _sdk(stack, TEAM)
    try:
        answer = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
        chunks = [
            c
            async for c in await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="hi"
            )
        ]
    finally:
        await client.aio.aclose()
        client.close()
    assert answer.text
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == answer.text
    # The emulator saw the upstream key's project, never the gateway token's.
    projects = stack.emulator.emulator.stats()["projects"]
    assert len(projects) == 1


async def test_without_a_known_token_nothing_goes_upstream(stack: Stack) -> None:
    url = f"{stack.gateway.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    async with httpx.AsyncClient() as http:
        missing = await http.post(url, json=body)
        unknown = await http.post(url, json=body, headers={"x-goog-api-key": UPSTREAM_KEY})
        by_query = await http.post(f"{url}?key={TEAM}", json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert unknown.status_code == 403
    assert "gateway" in unknown.json()["error"]["message"]
    assert UPSTREAM_KEY not in unknown.text
    assert by_query.status_code == 200  # ?key= is how REST users send it
    assert stack.requests_seen() == 1


async def test_a_token_is_held_to_its_models_and_its_rate(stack: Stack) -> None:
    client = _sdk(stack, FLASH_ONLY)
    try:
        with pytest.raises(errors.ClientError) as refused:
            await client.aio.models.generate_content(model="gemini-2.5-pro", contents="hi")
    finally:
        await client.aio.aclose()
        client.close()
    assert refused.value.code == 403
    assert "gemini-2.5-flash" in (refused.value.message or "")
    url = f"{stack.gateway.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    async with httpx.AsyncClient(headers={"x-goog-api-key": TEAM}) as http:
        answers = [await http.post(url, json=body) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    error = answers[-1].json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert "5 requests per minute" in error["message"]
    assert any(d.get("retryDelay") for d in error["details"])
    assert stack.requests_seen() == 5


async def test_bad_input_is_refused_in_gemini_format_without_an_upstream_call(
    stack: Stack,
) -> None:
    base = stack.gateway.base_url
    url = f"{base}/v1beta/models/gemini-2.5-flash:generateContent"
    async with httpx.AsyncClient(headers={"x-goog-api-key": TEAM}) as http:
        not_json = await http.post(
            url, content=b"{not json", headers={"content-type": "application/json"}
        )
        too_big = await http.post(url, content=b"x" * (65 * 1024))
        unknown = await http.get(f"{base}/v9/models")
        nowhere = await http.get(f"{base}/nowhere")
        healthy = await http.get(f"{base}/healthz")
        ready = await http.get(f"{base}/readyz")
    assert not_json.status_code == 400
    assert not_json.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert too_big.status_code == 413
    assert "65,536" in too_big.json()["error"]["message"]
    assert unknown.status_code == 404
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["code"] == 404
    assert healthy.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert stack.requests_seen() == 0


async def test_the_openai_sdk_works_through_the_gateway(stack: Stack) -> None:
    client = openai.AsyncOpenAI(
        api_key=TEAM, base_url=f"{stack.gateway.base_url}/v1beta/openai/", max_retries=0
    )
    async with client:
        completion = await client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
        )
        stream = await client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(
                model="gemini-0", messages=[{"role": "user", "content": "hi"}]
            )
    assert completion.choices[0].message.content == text
    body = missing.value.response.json()
    assert isinstance(body, list)  # the compatibility layer's list-wrapped error


async def test_an_upstream_that_is_down_is_a_502_that_says_so() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = Gateway(
        tokens=_tokens(),
        transport=AiohttpTransport(),
        base_url=f"http://127.0.0.1:{port}",
        upstream_key=UPSTREAM_KEY,
    )
    try:
        async with serve_gateway(gateway) as server, httpx.AsyncClient() as http:
            reply = await http.post(
                f"{server.base_url}/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "hi"}]}]},
                headers={"x-goog-api-key": TEAM},
            )
    finally:
        await gateway.aclose()
    assert reply.status_code == 502
    assert "did not answer" in reply.json()["error"]["message"]


async def test_the_access_log_has_one_line_per_request_without_tokens_or_prompts(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{stack.gateway.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    prompt = "a prompt the log must not hold"
    body = {"contents": [{"parts": [{"text": prompt}]}]}
    with caplog.at_level(logging.INFO, logger="gemini_guard.gateway.access"):
        async with httpx.AsyncClient() as http:
            served = await http.post(url, json=body, headers={"x-goog-api-key": TEAM})
            refused = await http.post(url, json=body, headers={"x-goog-api-key": "gg-unknown-1234"})
    assert (served.status_code, refused.status_code) == (200, 403)
    records = [r for r in caplog.records if r.name == "gemini_guard.gateway.access"]
    lines = [json.loads(r.getMessage()) for r in records]
    assert [(line["caller"], line["status"], line["model"]) for line in lines] == [
        ("team", 200, "gemini-2.5-flash"),
        ("-", 403, None),
    ]
    assert lines[0]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert lines[0]["ms"] > 0
    text = "\n".join(r.getMessage() for r in records)
    assert TEAM not in text
    assert "gg-unknown-1234" not in text
    assert prompt not in text
    assert UPSTREAM_KEY not in text


async def test_a_stream_has_its_access_line_once_it_has_been_relayed(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{stack.gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "Count to five."}]}]}
    with caplog.at_level(logging.INFO, logger="gemini_guard.gateway.access"):
        async with (
            httpx.AsyncClient() as http,
            http.stream(
                "POST", url, params={"alt": "sse"}, json=body, headers={"x-goog-api-key": TEAM}
            ) as reply,
        ):
            events = [line async for line in reply.aiter_lines() if line.startswith("data:")]
    assert reply.status_code == 200
    assert len(events) > 1
    lines = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "gemini_guard.gateway.access"
    ]
    assert [(line["caller"], line["status"], line["model"]) for line in lines] == [
        ("team", 200, "gemini-2.5-flash")
    ]
