"""Client input the real API rejects gets its 400, never a 500 (issue 18, item 6)."""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Emulator
from gemini_guard.emulator.request_json import MAX_DEPTH, MAX_REQUEST_BYTES

URL = "/v1beta/models/gemini-2.5-flash:generateContent"
HEADERS = {"x-goog-api-key": "k", "content-type": "application/json"}
HELLO = '{"contents":[{"parts":[{"text":"hi"}]}]'


def _deep_schema(levels: int) -> str:
    head = '{"type":"OBJECT","properties":{"a":' * levels
    return head + '{"type":"STRING"}' + "}}" * levels


CASES: list[tuple[str, bytes, str]] = [
    ("lone surrogate", b'{"contents":[{"parts":[{"text":"\\ud800"}]}]}', "lone surrogate"),
    (
        "100,000-deep nesting",
        (HELLO + ',"tools":' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
        "depth",
    ),
    (
        "5,000-deep schema",
        (
            HELLO
            + ',"generationConfig":{"responseMimeType":"application/json","responseSchema":'
            + _deep_schema(5_000)
            + "}}"
        ).encode(),
        "depth",
    ),
    ("NaN", (HELLO + ',"generationConfig":{"temperature":NaN}}').encode(), "Unexpected token."),
    ("Infinity", (HELLO + ',"generationConfig":{"topP":Infinity}}').encode(), "Unexpected token."),
    (
        "text as a number",
        b'{"contents":[{"parts":[{"text":5}]}]}',
        "Invalid value at 'contents[0].parts[0].text' (TYPE_STRING), 5",
    ),
    (
        "generationConfig as a string",
        (HELLO + ',"generationConfig":"x"}').encode(),
        "Invalid value at 'generation_config' (type.googleapis.com/google.ai."
        'generativelanguage.v1beta.GenerationConfig), "x"',
    ),
    (
        "systemInstruction as a string",
        (HELLO + ',"systemInstruction":"be brief"}').encode(),
        "Invalid value at 'system_instruction'",
    ),
    (
        "a role as a number",
        b'{"contents":[{"role":5,"parts":[{"text":"a"}]}]}',
        "'contents[0].role' (TYPE_STRING), 5",
    ),
    ("a tool as a string", (HELLO + ',"tools":["x"]}').encode(), "Invalid value at 'tools[0]'"),
    (
        "thinkingConfig as a string",
        (HELLO + ',"generationConfig":{"thinkingConfig":"x"}}').encode(),
        "'generation_config.thinking_config'",
    ),
    (
        "a stop sequence as a number",
        (HELLO + ',"generationConfig":{"stopSequences":[1]}}').encode(),
        "'generation_config.stop_sequences[0]' (TYPE_STRING), 1",
    ),
]


@pytest.mark.parametrize(("name", "body", "words"), CASES, ids=[c[0] for c in CASES])
async def test_rejected_with_the_apis_400(
    open_client: Any, name: str, body: bytes, words: str
) -> None:
    emulator = Emulator("healthy", clock=FakeClock())
    response = await open_client(emulator).post(URL, content=body, headers=HEADERS)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert words in error["message"]
    assert emulator.stats()["totals"]["rejected"].get("bad_request") == 1


async def test_nesting_up_to_the_limit_is_fine(open_client: Any) -> None:
    body = HELLO + ',"generationConfig":{"responseMimeType":"application/json","responseSchema":'
    body += _deep_schema(20) + "}}"
    response = await open_client(Emulator("healthy", clock=FakeClock())).post(
        URL, content=body.encode(), headers=HEADERS
    )
    assert response.status_code == 200, response.text
    assert MAX_DEPTH == 100


async def test_a_request_over_the_size_cap(open_client: Any) -> None:
    text = "a" * (MAX_REQUEST_BYTES + 10)
    body = json.dumps({"contents": [{"parts": [{"text": text}]}]}).encode()
    emulator = Emulator("healthy", clock=FakeClock())
    response = await open_client(emulator).post(URL, content=body, headers=HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Request payload size exceeds the limit: 20971520 bytes."
    )
    assert emulator.stats()["totals"]["rejected"].get("request_too_large") == 1


async def test_a_client_that_disconnects_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    emulator = Emulator("healthy", clock=FakeClock())
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-goog-api-key", b"k"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
    }
    with caplog.at_level(logging.INFO, logger="gemini_guard.emulator"):
        await emulator.app(scope, receive, send)  # must not raise
    records = [r for r in caplog.records if r.name == "gemini_guard.emulator"]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert "disconnected" in records[0].getMessage()
    assert emulator.stats()["totals"]["rejected"].get("client_disconnected") == 1
