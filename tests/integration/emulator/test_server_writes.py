"""The emulator's server: uvicorn's httptools protocol, each answer's head and body in
one write (a client woken once per answer), and a dropped connection still the very
socket the request came on."""

from __future__ import annotations

import json

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Emulator
from gemini_guard.emulator.server import _protocol_for
from gemini_guard.joined_writes import JoinedHttpToolsProtocol
from tests.support.recorded_writes import serving_recorded

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "Say hi."}]}]}


def test_the_emulator_is_served_on_httptools() -> None:
    # h11 framing was half the emulator's time per request (py-spy, concurrency 64).
    assert JoinedHttpToolsProtocol is not None
    emulator = Emulator("healthy", clock=FakeClock())
    try:
        assert issubclass(_protocol_for(emulator), JoinedHttpToolsProtocol)
    finally:
        emulator.close()


async def test_each_answer_is_one_write_of_its_head_and_body() -> None:
    emulator = Emulator("healthy", clock=FakeClock())
    writes: list[bytes] = []
    try:
        async with (
            serving_recorded(emulator.app, _protocol_for(emulator), writes) as url,
            httpx.AsyncClient(headers={"x-goog-api-key": "k"}) as client,
        ):
            answers = [await client.post(url + GENERATE, json=BODY) for _ in range(3)]
    finally:
        emulator.close()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(writes) == 3
    for write, answer in zip(writes, answers, strict=True):
        assert write.startswith(b"HTTP/1.1 200 ")
        assert write.endswith(b"\r\n\r\n" + answer.content)
        assert json.loads(answer.content)["candidates"][0]["content"]["parts"][0]["text"]


async def test_a_drop_fault_aborts_the_connection_the_request_came_on() -> None:
    emulator = Emulator({"quotas": False, "faults": [{"kind": "drop"}]}, clock=FakeClock())
    writes: list[bytes] = []
    try:
        async with (
            serving_recorded(emulator.app, _protocol_for(emulator), writes) as url,
            httpx.AsyncClient(headers={"x-goog-api-key": "k"}) as client,
        ):
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(url + GENERATE, json=BODY)
            answered = await client.get(url + "/v1beta/models")
    finally:
        emulator.close()
    assert answered.status_code == 200  # a new connection, answered
    assert len(writes) == 1  # nothing was written on the dropped one
    # Each connection left the registry as it closed (it holds the socket's transport).
    assert emulator.connections == {}
