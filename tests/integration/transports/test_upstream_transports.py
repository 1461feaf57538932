"""The upstream transports (httpx over aiohttp; httpx over asyncio and httptools, the
gateway's): the same answers, streams and errors as httpx's own transport."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from gemini_guard.call.aiohttp_transport import AiohttpTransport
from gemini_guard.call.transport import read_body
from gemini_guard.call.wire_transport import WireTransport
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve_async
from tests.support.cookie_upstream import cookie_upstream

BODY = {"contents": [{"role": "user", "parts": [{"text": "Name a river."}]}]}

Transport = type[AiohttpTransport] | type[WireTransport]


@pytest.fixture(params=[AiohttpTransport, WireTransport], ids=["aiohttp", "wire"])
def transport_class(request: pytest.FixtureRequest) -> Transport:
    kind: Transport = request.param
    return kind


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    scenario = {
        "name": "transport-test",
        "quotas": False,
        "faults": [{"kind": "drop", "probability": 1.0, "models": ["gemini-2.5-pro"]}],
    }
    async with serve_async(scenario, clock=FakeClock()) as server:
        yield server


async def _both(
    kind: Transport, url: str, **kwargs: object
) -> tuple[httpx.Response, httpx.Response]:
    async with (
        httpx.AsyncClient() as plain,
        httpx.AsyncClient(transport=kind()) as ours,
    ):
        a = await plain.post(url, **kwargs)  # type: ignore[arg-type]
        b = await ours.post(url, **kwargs)  # type: ignore[arg-type]
    return a, b


async def test_an_answer_is_the_one_httpx_gets(
    emulator: EmulatorServer, transport_class: Transport
) -> None:
    url = f"{emulator.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    plain, ours = await _both(transport_class, url, json=BODY, headers={"x-goog-api-key": "k"})
    assert ours.status_code == plain.status_code == 200
    assert ours.json()["candidates"] == plain.json()["candidates"]
    assert ours.headers["content-type"].startswith("application/json")


async def test_an_error_keeps_its_status_and_body(
    emulator: EmulatorServer, transport_class: Transport
) -> None:
    url = f"{emulator.base_url}/v1beta/models/gemini-0:generateContent"
    plain, ours = await _both(transport_class, url, json=BODY, headers={"x-goog-api-key": "k"})
    assert ours.status_code == plain.status_code == 404
    assert ours.json() == plain.json()


async def test_a_stream_arrives_event_by_event(
    emulator: EmulatorServer, transport_class: Transport
) -> None:
    url = f"{emulator.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    headers = {"x-goog-api-key": "k"}
    async with (
        httpx.AsyncClient(transport=transport_class()) as client,
        client.stream("POST", url, json=BODY, headers=headers) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events]
    assert len(chunks) > 1
    assert "usageMetadata" in chunks[-1]


async def test_a_cut_connection_and_a_refused_one_are_httpx_errors(
    emulator: EmulatorServer, transport_class: Transport
) -> None:
    url = f"{emulator.base_url}/v1beta/models/gemini-2.5-pro:generateContent"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with httpx.AsyncClient(transport=transport_class()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(url, json=BODY, headers={"x-goog-api-key": "k"})
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{closed_port}/v1beta/models", json=BODY)


async def test_the_sdk_runs_unchanged_over_it(
    emulator: EmulatorServer, transport_class: Transport
) -> None:
    async with httpx.AsyncClient(transport=transport_class()) as http:
        options = types.HttpOptions(base_url=emulator.base_url, httpx_async_client=http)
        client = genai.Client(api_key="k", http_options=options)
        answer = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
        chunks = [
            c
            async for c in await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="hi"
            )
        ]
        with pytest.raises(errors.ClientError) as raised:
            await client.aio.models.generate_content(model="gemini-0", contents="hi")
    assert answer.text
    assert "".join(c.text or "" for c in chunks) == answer.text
    assert raised.value.code == 404


async def test_a_cookie_one_answer_sets_is_not_sent_with_later_requests(
    transport_class: Transport,
) -> None:
    # The transport carries many callers' requests (the gateway's, a Guard's): a cookie
    # the upstream set for one of them must not ride along with the next. (Called
    # directly: an httpx client would keep the cookie itself, and closing one closes
    # the transport.)
    async with cookie_upstream() as upstream:
        transport = transport_class()
        url = f"{upstream.base_url}/v1beta/models/m:generateContent"
        try:
            for _caller in range(2):
                answer = await transport.handle_async_request(httpx.Request("POST", url))
                await answer.aread()
                assert "upstream_session" in answer.headers["set-cookie"]
        finally:
            await transport.aclose()
    assert upstream.cookies_seen == [None, None]


async def test_a_body_read_in_one_step_is_left_as_aread_leaves_it(
    emulator: EmulatorServer, transport_class: Transport
) -> None:
    url = f"{emulator.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    request = httpx.Request("POST", url, json=BODY, headers={"x-goog-api-key": "k"})
    transport = transport_class()
    try:
        plain = await transport.handle_async_request(request)
        expected = await plain.aread()
        quick = await transport.handle_async_request(request)
        body = await read_body(quick)
        # What the guarded path's later readers see: the same bytes, however they ask.
        assert body == await quick.aread() == quick.content
        assert json.loads(body)["candidates"] == json.loads(expected)["candidates"]
        assert quick.is_stream_consumed
        await quick.aclose()
        await plain.aclose()
    finally:
        await transport.aclose()


async def test_a_body_of_any_other_transport_is_read_as_httpx_reads_it() -> None:
    answer = httpx.Response(200, stream=httpx.ByteStream(b'{"ok": true}'))
    assert await read_body(answer) == b'{"ok": true}'
    assert answer.content == b'{"ok": true}'
