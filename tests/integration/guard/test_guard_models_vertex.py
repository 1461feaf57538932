"""`guard.models` (the SDK-shaped path) over a `genai.Client(vertexai=True)`: the real
SDK against the emulator's Vertex surface, sync, async and streaming, and a Vertex 429
explained with Vertex's advice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, serve
from gemini_guard.errors import CallFailed
from gemini_guard.guard import Guard, guard_info
from tests.support.sdk_clients import keep_open

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
PROJECT = "vertex-models"
# europe-west4 has no shared capacity for pro: every project gets Vertex's bare 429.
SCENARIO = {
    "name": "vertex-models",
    "quotas": False,
    "vertex": {"locations": {"europe-west4": {"rpm": 0, "models": [PRO]}}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with serve(SCENARIO, clock=FakeClock()) as running:
        yield running


def _guard(server: EmulatorServer, location: str, models: list[str]) -> Guard:
    client = keep_open(
        genai.Client(
            vertexai=True,
            project=PROJECT,
            location=location,
            credentials=Credentials(token="ya29.test-token"),
            http_options=types.HttpOptions(base_url=server.base_url),
        )
    )
    return Guard(client=client, models=models, clock=FakeClock(), seed=3, log=False)


def _admitted(server: EmulatorServer, location: str, model: str) -> int:
    projects = server.emulator.stats()["projects"]
    counts: int = projects.get(f"{PROJECT}@{location}", {}).get(model, {}).get("admitted", 0)
    return counts


def test_sync_calls_reach_the_vertex_surface(server: EmulatorServer) -> None:
    before = _admitted(server, "us-central1", FLASH)
    with _guard(server, "us-central1", [FLASH]) as guard:
        response = guard.models.generate_content(model=FLASH, contents="Say hello.")
        counted = guard.models.count_tokens(model=FLASH, contents="Say hello.")
    assert response.text
    info = guard_info(response)
    assert info is not None
    assert info.model == FLASH
    assert counted.total_tokens is not None
    assert counted.total_tokens > 0
    assert _admitted(server, "us-central1", FLASH) == before + 2  # generate and count


async def test_async_calls_and_streams_reach_the_vertex_surface(server: EmulatorServer) -> None:
    before = _admitted(server, "us-east5", FLASH)
    with _guard(server, "us-east5", [FLASH]) as guard:
        response = await guard.aio.models.generate_content(model=FLASH, contents="Say hello.")
        chunks = [
            chunk.text or ""
            async for chunk in await guard.aio.models.generate_content_stream(
                model=FLASH, contents="Tell a long story."
            )
        ]
    assert response.text
    assert len(chunks) > 1
    assert "".join(chunks).strip()
    assert _admitted(server, "us-east5", FLASH) == before + 2


def test_a_sync_stream_reaches_the_vertex_surface(server: EmulatorServer) -> None:
    before = _admitted(server, "asia-northeast1", FLASH)
    with _guard(server, "asia-northeast1", [FLASH]) as guard:
        chunks = [
            chunk.text or ""
            for chunk in guard.models.generate_content_stream(
                model=FLASH, contents="Tell a long story."
            )
        ]
    assert len(chunks) > 1
    assert "".join(chunks).strip()
    assert _admitted(server, "asia-northeast1", FLASH) == before + 1


def test_a_vertex_429_is_diagnosed_with_vertex_advice(server: EmulatorServer) -> None:
    with _guard(server, "europe-west4", [PRO]) as guard, pytest.raises(CallFailed) as caught:
        guard.models.generate_content(model=PRO, contents="Say hello.")
    diagnosis = caught.value.diagnosis
    assert diagnosis.category is Category.RATE_LIMITED
    assert diagnosis.http_status == 429
    assert len(caught.value.attempts) > 1  # retried: a shared-capacity 429 may clear
    english = diagnosis.explain("en")
    assert "Vertex AI: the shared capacity for this model in this region ran short" in english
    assert "location='global'" in english
    assert "Provisioned Throughput" in english
    for studio in ("aistudio", "ai.dev", "GEMINI_API_KEY", "billing"):
        assert studio not in english
    chinese = diagnosis.explain("zh")
    assert "该模型在此区域的共享容量不足" in chinese
    assert "预配吞吐量" in chinese


def test_a_vertex_429_falls_back_to_the_next_model_with_capacity(
    server: EmulatorServer,
) -> None:
    with _guard(server, "europe-west4", [PRO, FLASH]) as guard:
        response = guard.models.generate_content(model=PRO, contents="Say hello.")
    info = guard_info(response)
    assert response.text
    assert info is not None
    assert info.model == FLASH
    failed = [a.category for a in info.attempts if a.model == PRO]
    assert failed
    assert set(failed) == {Category.RATE_LIMITED}
