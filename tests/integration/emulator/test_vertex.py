"""The real google-genai SDK with vertexai=True, unchanged, against the emulator's Vertex surface.

Credentials are a static bearer token (`google.oauth2.credentials.Credentials(token=...)`):
the SDK sends it as given and never looks for ADC or a metadata server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

import gemini_guard as gg
from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve
from gemini_guard.emulator.vertex import SHARED_QUOTA_MESSAGE
from gemini_guard.tokens import estimate_tokens
from tests.support.sdk_clients import keep_open

SCENARIO: dict[str, Any] = {
    "name": "vertex-test",
    "quotas": False,
    "vertex": {
        "locations": {
            "us-central1": {"rpm": 3, "models": ["gemini-2.5-pro"], "start": 10, "end": 600},
            "europe-west4": {"rpm": 2},
        }
    },
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vertex(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve(SCENARIO, clock=clock) as server:
        yield server


def vertex_client(
    server: EmulatorServer,
    *,
    project: str = "my-project",
    location: str = "us-central1",
    api_version: str | None = None,
) -> genai.Client:
    options = types.HttpOptions(base_url=server.base_url, api_version=api_version)
    return keep_open(
        genai.Client(
            vertexai=True,
            project=project,
            location=location,
            credentials=Credentials(token="ya29.test-token"),
            http_options=options,
        )
    )


@pytest.mark.parametrize("version", [None, "v1"])  # None: the SDK's default (v1beta1)
def test_sync_generate_stream_and_count_tokens(vertex: EmulatorServer, version: str | None) -> None:
    client = vertex_client(vertex, api_version=version)
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Explain regional quotas.",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.3),
    )
    assert response.text
    assert response.model_version == "gemini-2.5-flash"
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count
    assert usage.candidates_token_count

    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Explain regional quotas."
        )
    )
    assert len(chunks) > 1
    assert (
        "".join(c.text or "" for c in chunks)
        == client.models.generate_content(
            model="gemini-2.5-flash", contents="Explain regional quotas."
        ).text
    )

    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="Explain quotas.")
    assert counted.total_tokens == estimate_tokens("Explain quotas.")

    projects = vertex.emulator.stats()["projects"]
    assert projects["my-project@us-central1"]["gemini-2.5-flash"]["admitted"] == 4  # and 1 count


async def test_async_generate_and_stream(vertex: EmulatorServer) -> None:
    client = vertex_client(vertex, location="global")
    response = await client.aio.models.generate_content(
        model="gemini-2.5-flash-lite", contents="hello"
    )
    assert response.text
    texts = [
        chunk.text
        async for chunk in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash-lite", contents="hello"
        )
    ]
    assert "".join(t or "" for t in texts) == response.text
    counted = await client.aio.models.count_tokens(model="gemini-2.5-flash-lite", contents="hi")
    assert counted.total_tokens == 1
    assert "my-project@global" in vertex.emulator.stats()["projects"]


def test_shared_quota_is_per_location_and_bare(vertex: EmulatorServer, clock: FakeClock) -> None:
    central = vertex_client(vertex, location="us-central1")
    other_project = vertex_client(vertex, project="other", location="us-central1")
    global_ = vertex_client(vertex, location="global")

    # Before the window opens, us-central1 is unlimited.
    for _ in range(5):
        central.models.generate_content(model="gemini-2.5-pro", contents="x")
    clock.advance(10)
    for _ in range(2):
        central.models.generate_content(model="gemini-2.5-pro", contents="x")
    # The capacity (3 a minute) is shared: another project takes the last slot...
    other_project.models.generate_content(model="gemini-2.5-pro", contents="x")
    # ...and then every project gets the bare 429.
    for client in (central, other_project):
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-pro", contents="x")
        assert caught.value.code == 429
        assert caught.value.status == "RESOURCE_EXHAUSTED"
        assert caught.value.message == SHARED_QUOTA_MESSAGE
        assert caught.value.details == {
            "error": {"code": 429, "message": SHARED_QUOTA_MESSAGE, "status": "RESOURCE_EXHAUSTED"}
        }
    # Other models in that location, and the same model elsewhere, are not affected.
    central.models.generate_content(model="gemini-2.5-flash", contents="x")
    for _ in range(5):
        global_.models.generate_content(model="gemini-2.5-pro", contents="x")
    # The window slides: a minute later the location serves again.
    clock.advance(60)
    central.models.generate_content(model="gemini-2.5-pro", contents="x")

    projects = vertex.emulator.stats()["projects"]
    assert projects["my-project@us-central1"]["gemini-2.5-pro"]["rejected"] == {"shared_quota": 1}
    assert projects["other@us-central1"]["gemini-2.5-pro"]["rejected"] == {"shared_quota": 1}
    assert projects["my-project@global"]["gemini-2.5-pro"]["admitted"] == 5

    # The diagnosis tells it apart from an AI Studio 429 and gives Vertex advice.
    for _ in range(2):  # with the one above, the location's 3 a minute
        central.models.generate_content(model="gemini-2.5-pro", contents="x")
    with pytest.raises(errors.ClientError) as caught:
        central.models.generate_content(model="gemini-2.5-pro", contents="x")
    diagnosis = gg.diagnose(caught.value)
    assert diagnosis.category is gg.Category.RATE_LIMITED
    assert diagnosis.retryable
    text = diagnosis.explain("en")
    assert "global" in text
    assert "cloud.google.com/vertex-ai" in text
    assert "ai.dev" not in text
    assert "provisioned throughput" in text.lower()
    assert "全局" in diagnosis.explain("zh") or "global" in diagnosis.explain("zh")


def test_shared_quota_without_a_window_and_count_tokens_is_not_limited(
    vertex: EmulatorServer,
) -> None:
    client = vertex_client(vertex, location="europe-west4")
    client.models.generate_content(model="gemini-2.5-flash", contents="x")
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    assert list(stream)
    with pytest.raises(errors.ClientError) as caught:
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
    assert caught.value.code == 429
    for _ in range(5):
        assert client.models.count_tokens(model="gemini-2.5-flash", contents="x").total_tokens


def test_project_quota_per_base_model(clock: FakeClock) -> None:
    scenario = {"name": "p", "quotas": False, "vertex": {"project_rpm": 1}}
    with serve(scenario, clock=clock) as server:
        client = vertex_client(server, location="us-east5")
        client.models.generate_content(model="gemini-2.5-pro", contents="x")
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert caught.value.code == 429
    assert "aiplatform.googleapis.com/" in (caught.value.message or "")
    diagnosis = gg.diagnose(caught.value)
    assert diagnosis.category is gg.Category.RATE_LIMITED
    assert diagnosis.quota is not None
    assert diagnosis.quota.model == "gemini-2.5-pro"
    assert diagnosis.quota.scope == "minute"
    assert "console.cloud.google.com" in diagnosis.explain("en")


def test_missing_token_unknown_model_and_version(vertex: EmulatorServer) -> None:
    base = f"{vertex.base_url}/v1beta1/projects/p/locations/us-central1/publishers/google/models"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with httpx.Client() as http:
        missing = http.post(f"{base}/gemini-2.5-flash:generateContent", json=body)
        assert missing.status_code == 401
        assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
        auth = {"authorization": "Bearer anything"}
        unknown = http.post(f"{base}/gemini-0-nope:generateContent", json=body, headers=auth)
        assert unknown.status_code == 404
        assert "Publisher Model `projects/p/locations/us-central1" in unknown.text
        bad_version = http.post(
            base.replace("v1beta1", "v9") + "/gemini-2.5-flash:generateContent",
            json=body,
            headers=auth,
        )
        assert bad_version.status_code == 404
        # An API key is not what Vertex takes.
        keyed = http.post(
            f"{base}/gemini-2.5-flash:generateContent",
            json=body,
            headers={"x-goog-api-key": "AIzaSyFake"},
        )
        assert keyed.status_code == 401
    assert gg.diagnose(missing.json()).category is gg.Category.INVALID_API_KEY


def test_the_shipped_scenario_limits_us_central1_pro_only(clock: FakeClock) -> None:
    with serve("vertex-shared-quota", clock=clock) as server:
        central = vertex_client(server, location="us-central1")
        global_ = vertex_client(server, location="global")
        clock.advance(60)
        codes = []
        for _ in range(12):
            try:
                central.models.generate_content(model="gemini-2.5-pro", contents="x")
                codes.append(200)
            except errors.ClientError as exc:
                codes.append(exc.code)
        assert codes == [200] * 10 + [429] * 2
        for _ in range(12):
            global_.models.generate_content(model="gemini-2.5-pro", contents="x")
        clock.advance(1200)
        central.models.generate_content(model="gemini-2.5-pro", contents="x")
