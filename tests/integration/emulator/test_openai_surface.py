"""The OpenAI Python SDK, unchanged, against the emulator's OpenAI-compatible surface."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, diagnose
from gemini_guard.emulator import EmulatorServer, serve
from tests.integration.emulator.conftest import sdk_client

PROMPT = "Name three rivers of Europe."


@pytest.fixture
def free_tier(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve("free-tier", clock=clock) as server:
        yield server


def _openai(server: EmulatorServer, key: str = "test-key") -> openai.OpenAI:
    # max_retries=0: the SDK's own retry would hide what the emulator answered.
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1beta/openai/", max_retries=0)


def test_a_chat_completion_carries_the_answer_the_gemini_route_gives(
    healthy: EmulatorServer,
) -> None:
    with _openai(healthy) as client:
        completion = client.chat.completions.create(
            model="gemini-2.5-flash",
            messages=[
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": PROMPT},
            ],
        )
    gemini = sdk_client(healthy)
    try:
        native = gemini.models.generate_content(
            model="gemini-2.5-flash",
            contents=PROMPT,
            config={"system_instruction": "Answer briefly."},
        )
    finally:
        gemini.close()
    assert completion.object == "chat.completion"
    assert completion.model == "gemini-2.5-flash"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == native.text
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert native.usage_metadata is not None
    assert usage.prompt_tokens == native.usage_metadata.prompt_token_count
    assert usage.total_tokens == native.usage_metadata.total_token_count


def test_a_stream_arrives_in_chunks_that_add_up_to_the_whole_answer(
    healthy: EmulatorServer,
) -> None:
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": PROMPT}
    ]
    with _openai(healthy) as client:
        whole = client.chat.completions.create(model="gemini-2.5-flash", messages=messages)
        chunks = list(
            client.chat.completions.create(
                model="gemini-2.5-flash",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert len(chunks) > 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == (whole.usage.total_tokens if whole.usage else -1)


def test_the_models_list_names_gemini_models(healthy: EmulatorServer) -> None:
    with _openai(healthy) as client:
        ids = [model.id for model in client.models.list()]
    assert "models/gemini-2.5-flash" in ids


def test_a_quota_wall_is_a_429_the_sdk_raises_and_diagnose_reads(
    free_tier: EmulatorServer,
) -> None:
    limit = 10  # gemini-2.5-flash on the free tier (the clock stands still)
    with _openai(free_tier) as client:
        for _ in range(limit):
            client.chat.completions.create(
                model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(
                model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
            )
    response = raised.value.response
    assert response.status_code == 429
    body = response.json()
    # The compatibility layer wraps Gemini's error in a one-element list.
    assert isinstance(body, list)
    assert body[0]["error"]["status"] == "RESOURCE_EXHAUSTED"
    diagnosis = diagnose(response)
    assert diagnosis.category == Category.RATE_LIMITED
    assert diagnosis.retry_after is not None


def test_requests_the_layer_refuses_are_gemini_errors_in_a_list(
    healthy: EmulatorServer,
) -> None:
    url = f"{healthy.base_url}/v1beta/openai/chat/completions"
    auth = {"Authorization": "Bearer test-key"}
    message = [{"role": "user", "content": "hi"}]
    with httpx.Client() as http:
        unknown = http.post(
            url, headers=auth, json={"model": "gemini-2.5-flash", "messages": message, "foo": 1}
        )
        no_key = http.post(url, json={"model": "gemini-2.5-flash", "messages": message})
        no_model = http.post(url, headers=auth, json={"model": "gemini-0", "messages": message})
        not_json = http.post(url, headers=auth, content=b"{nope")
    assert unknown.status_code == 400
    assert 'Unknown name "foo"' in unknown.json()[0]["error"]["message"]
    assert no_key.status_code == 403
    assert no_key.json()[0]["error"]["status"] == "PERMISSION_DENIED"
    assert no_model.status_code == 404
    assert "gemini-0" in no_model.json()[0]["error"]["message"]
    assert not_json.status_code == 400
    assert not_json.json()[0]["error"]["status"] == "INVALID_ARGUMENT"


def test_a_503_storm_reaches_openai_clients_as_503s(clock: FakeClock) -> None:
    scenario = {
        "name": "openai-storm",
        "quotas": False,
        "faults": [{"kind": "overloaded", "probability": 1.0, "models": ["gemini-2.5-pro"]}],
    }
    with serve(scenario, clock=clock) as server, _openai(server) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(
                model="gemini-2.5-pro", messages=[{"role": "user", "content": "hi"}]
            )
        ok = client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == 503
    assert diagnose(raised.value.response).category == Category.OVERLOADED
    assert ok.choices[0].message.content
