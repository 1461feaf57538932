"""The real google-genai SDK, unchanged, against the emulator on a loopback socket."""

from __future__ import annotations

import json

import httpx
import httpx2
import pytest
from google.genai import errors, types

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve, serve_async
from gemini_guard.tiers import load_models
from tests.integration.emulator.conftest import sdk_client

VERSIONS = [None, "v1beta", "v1alpha"]  # None: the SDK's default (v1)


@pytest.mark.parametrize("version", VERSIONS)
def test_generate_stream_and_count_tokens(healthy: EmulatorServer, version: str | None) -> None:
    client = sdk_client(healthy, api_version=version)
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Explain sliding windows.",
        config=types.GenerateContentConfig(
            system_instruction="Be brief.",
            temperature=0.2,
            thinking_config=types.ThinkingConfig(thinking_budget=0),  # sent in snake_case
        ),
    )
    assert response.text
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    assert response.candidates
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count
    assert usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count

    again = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Explain sliding windows.",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2),
    )
    assert again.text == response.text  # deterministic

    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash",
            contents="Explain sliding windows.",
            config=types.GenerateContentConfig(system_instruction="Be brief."),
        )
    )
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == response.text
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.candidates_token_count == usage.candidates_token_count

    counted = client.models.count_tokens(
        model="gemini-2.5-flash", contents="Explain sliding windows."
    )
    assert counted.total_tokens == 4  # 3 words and a full stop


@pytest.mark.parametrize("version", VERSIONS)
async def test_async_generate_and_stream(healthy: EmulatorServer, version: str | None) -> None:
    client = sdk_client(healthy, api_version=version).aio
    try:
        response = await client.models.generate_content(model="gemini-2.5-pro", contents="hi")
        assert response.text
        stream = await client.models.generate_content_stream(model="gemini-2.5-pro", contents="hi")
        chunks = [c async for c in stream]
        assert "".join(c.text or "" for c in chunks) == response.text
        counted = await client.models.count_tokens(model="gemini-2.5-pro", contents="hi")
        assert counted.total_tokens == 1
    finally:
        await client.aclose()


@pytest.mark.parametrize("version", VERSIONS)
def test_models_list_and_get(healthy: EmulatorServer, version: str | None) -> None:
    client = sdk_client(healthy, api_version=version)
    names = [m.name for m in client.models.list(config={"page_size": 2})]  # pages through
    # The shipped table's generative and embedding models, in its order.
    table = [
        f"models/{name}"
        for name, spec in load_models().items()
        if spec.can_generate or "embedContent" in spec.methods
    ]
    assert names == table
    assert names[:3] == [
        "models/gemini-2.5-pro",
        "models/gemini-2.5-flash",
        "models/gemini-2.5-flash-lite",
    ]
    embedder = client.models.get(model="gemini-embedding-001")
    assert embedder.supported_actions is not None
    assert "embedContent" in embedder.supported_actions
    assert "generateContent" not in embedder.supported_actions
    model = client.models.get(model="gemini-2.5-flash")
    assert model.input_token_limit == 1_048_576
    assert model.output_token_limit == 65_536
    assert model.supported_actions
    assert "generateContent" in model.supported_actions
    with pytest.raises(errors.ClientError) as info:
        client.models.get(model="gemini-0-nothing")
    assert info.value.code == 404


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_batches_create_get_list_cancel_delete(clock: FakeClock, version: str | None) -> None:
    with serve("healthy", clock=clock) as server:
        client = sdk_client(server, api_version=version)
        job = client.batches.create(
            model="gemini-2.5-flash",
            src=[
                types.InlinedRequest(
                    contents=[types.Content(role="user", parts=[types.Part(text="first")])]
                ),
                types.InlinedRequest(
                    contents="second", config=types.GenerateContentConfig(max_output_tokens=4)
                ),
            ],
            config={"display_name": "nightly"},
        )
        assert job.name
        assert job.name.startswith("batches/")
        assert job.state == types.JobState.JOB_STATE_PENDING
        assert job.display_name == "nightly"
        clock.advance(30 + 2 * 2)  # pending, then 2 s per request (the scenario's defaults)
        done = client.batches.get(name=job.name)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED
        assert done.dest is not None
        assert done.dest.inlined_responses
        first, second = done.dest.inlined_responses
        assert first.response is not None
        assert first.response.text
        assert second.response is not None
        assert second.response.candidates
        assert second.response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
        other = client.batches.create(
            model="gemini-2.5-flash", src=[types.InlinedRequest(contents="x")]
        )
        assert other.name
        assert {j.name for j in client.batches.list()} == {job.name, other.name}
        client.batches.cancel(name=other.name)
        assert client.batches.get(name=other.name).state == types.JobState.JOB_STATE_CANCELLED
        client.batches.delete(name=other.name)
        assert [j.name for j in client.batches.list()] == [job.name]


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_caches_create_get_list_use_delete(healthy: EmulatorServer, version: str | None) -> None:
    client = sdk_client(healthy, api_version=version)
    cache = client.caches.create(
        model="gemini-2.5-flash",
        config=types.CreateCachedContentConfig(
            contents=["A long shared document. " * 250],
            system_instruction="Answer from the document.",
            display_name="doc",
            ttl="600s",
        ),
    )
    assert cache.name
    assert cache.usage_metadata
    assert cache.usage_metadata.total_token_count
    cached_tokens = cache.usage_metadata.total_token_count
    assert client.caches.get(name=cache.name).display_name == "doc"
    assert [c.name for c in client.caches.list()] == [cache.name]
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="What does it say?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert response.usage_metadata is not None
    assert response.usage_metadata.cached_content_token_count == cached_tokens
    assert response.usage_metadata.prompt_token_count == cached_tokens + 5
    updated = client.caches.update(
        name=cache.name, config=types.UpdateCachedContentConfig(ttl="1200s")
    )
    assert updated.expire_time
    assert cache.expire_time
    assert updated.expire_time > cache.expire_time
    client.caches.delete(name=cache.name)
    assert list(client.caches.list()) == []


def test_sdk_errors_carry_the_real_bodies(clock: FakeClock) -> None:
    scenario = {
        "keys": {"good": {"project": "p"}, "bad": {"project": "p", "state": "invalid"}},
        "accept_unknown_keys": False,
        "limits": {"gemini-2.5-flash": {"free": {"rpm": 1}}},
    }
    with serve(scenario, clock=clock) as server:
        good = sdk_client(server, key="good")
        good.models.generate_content(model="gemini-2.5-flash", contents="hi")
        with pytest.raises(errors.ClientError) as info:
            good.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
        assert info.value.details["error"]["details"][-1]["retryDelay"] == "60s"
        bad = sdk_client(server, key="bad")  # keep a reference: a dropped Client closes itself
        with pytest.raises(errors.ClientError) as info:
            bad.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert info.value.code == 400
        assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        with pytest.raises(errors.ClientError) as info:
            good.models.generate_content(
                model="gemini-2.5-flash", contents="hi", config={"candidate_count": 9}
            )
        assert "must be between 1 and 8" in str(info.value.message)


def test_faults_reach_the_sdk_as_the_real_ones_do(clock: FakeClock) -> None:
    cases = {
        "overloaded": (errors.ServerError, 503),
        "internal": (errors.ServerError, 500),
        "deadline": (errors.ServerError, 504),
        "bad_gateway": (errors.ServerError, 502),
    }
    for kind, (error_type, code) in cases.items():
        with serve({"quotas": False, "faults": [{"kind": kind}]}, clock=clock) as server:
            client = sdk_client(server)
            with pytest.raises(error_type) as info:
                client.models.generate_content(model="gemini-2.5-flash", contents="hi")
            assert info.value.code == code


def test_a_dropped_connection_is_a_connection_error_not_a_response(clock: FakeClock) -> None:
    with serve({"quotas": False, "faults": [{"kind": "drop"}]}, clock=clock) as server:
        client = sdk_client(server)
        # The SDK's transport (httpx2) sees the peer close without an answer.
        with pytest.raises(httpx2.RemoteProtocolError, match="without sending a response"):
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(
                server.base_url + "/v1/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "x"}]}]},
                headers={"x-goog-api-key": "k"},
            )
        assert server.emulator.stats()["totals"]["rejected"] == {"dropped": 2}


def test_streams_that_break_midway(clock: FakeClock) -> None:
    for kind in ("stream_error", "stream_drop"):
        scenario = {"quotas": False, "faults": [{"kind": kind, "after_chunks": 2}]}
        with serve(scenario, clock=clock) as server:
            received: list[str | None] = []
            client = sdk_client(server)
            stream = client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="a long answer please"
            )
            with pytest.raises((errors.ServerError, httpx2.RemoteProtocolError)) as info:
                received.extend(chunk.text for chunk in stream)
            assert len(received) == 2
            if kind == "stream_error":
                assert isinstance(info.value, errors.ServerError)
                assert info.value.code == 500
            else:
                assert type(info.value).__name__ == "RemoteProtocolError"


async def test_serve_async_on_the_running_loop() -> None:
    async with serve_async("healthy", clock=FakeClock()) as server:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                server.base_url + "/v1beta/models/gemini-2.5-flash:generateContent?key=k",
                json={"contents": [{"parts": [{"text": "x"}]}]},
            )
            assert response.status_code == 200
        assert json.loads(response.text)["modelVersion"] == "gemini-2.5-flash"
        assert server.emulator.stats()["totals"]["admitted"] == 1


def test_every_sampling_parameter_the_sdk_sends_is_accepted(healthy: EmulatorServer) -> None:
    # The SDK serialises top_k as a float (40.0); the real API takes it, so must we.
    client = sdk_client(healthy)  # keep a reference: a collected Client closes its transport
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="hi",
        config=types.GenerateContentConfig(
            temperature=1.0, top_p=0.9, top_k=40, candidate_count=1, max_output_tokens=128, seed=7
        ),
    )
    assert response.text
