"""`guard.client` on Vertex AI: the real SDK with `vertexai=True`, and a location
chain that absorbs a shared-capacity storm in one location."""

from __future__ import annotations

from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from gemini_guard.call.http import route_of, vertex_host, with_model
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category
from gemini_guard.emulator import EmulatorServer, serve
from gemini_guard.guard import Guard, last_call
from tests.support.sdk_clients import keep_open

PRO = "gemini-2.5-pro"
# us-central1 has room for 2 pro requests a minute, for every project together.
SCENARIO = {
    "name": "central-short",
    "quotas": False,
    "vertex": {"locations": {"us-central1": {"rpm": 2, "models": [PRO]}}},
}


def _vertex_client(server: EmulatorServer, location: str) -> genai.Client:
    return keep_open(
        genai.Client(
            vertexai=True,
            project="my-project",
            location=location,
            credentials=Credentials(token="ya29.test-token"),
            http_options=types.HttpOptions(base_url=server.base_url),
        )
    )


def test_a_storm_in_one_location_is_absorbed_by_the_location_chain() -> None:
    clock = FakeClock()
    with serve(SCENARIO, clock=clock) as server:
        guard = Guard(
            client=_vertex_client(server, "us-central1"),
            models=[f"{PRO}@global"],
            clock=clock,
            seed=5,
            log=False,
        )
        try:
            answers = [
                guard.client.models.generate_content(model=PRO, contents=f"q{i}") for i in range(6)
            ]
            info = last_call()
        finally:
            guard.close()
        projects = server.emulator.stats()["projects"]
    assert all(a.text for a in answers)  # nothing lost
    assert projects["my-project@us-central1"][PRO]["admitted"] == 2
    assert projects["my-project@global"][PRO]["admitted"] == 4
    assert info is not None
    assert info.model == f"{PRO}@global"
    shared = [a for a in info.attempts if a.category is Category.RATE_LIMITED]
    assert all(a.model == PRO for a in shared)  # the request's own location


def test_a_location_entry_rewrites_the_path_and_the_host() -> None:
    path = (
        "/v1beta1/projects/p/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:generateContent"
    )
    route = route_of("POST", path, {})
    assert route.model == "gemini-2.5-pro"  # in the request's own location
    moved, _ = with_model(path, b"{}", route, "gemini-2.5-flash@europe-west4")
    assert moved.endswith(
        "/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    stays, _ = with_model(path, b"{}", route, "gemini-2.5-flash")
    assert "/locations/us-central1/" in stays
    assert (
        vertex_host("us-central1-aiplatform.googleapis.com", "global")
        == "aiplatform.googleapis.com"
    )
    assert (
        vertex_host("aiplatform.googleapis.com", "asia-northeast1")
        == "asia-northeast1-aiplatform.googleapis.com"
    )
    assert vertex_host("127.0.0.1", "global") == "127.0.0.1"


def _location_storm_figures(server: EmulatorServer) -> tuple[int, int]:
    projects = server.emulator.stats()["projects"]
    return (
        projects["my-project@us-central1"][PRO]["admitted"],
        projects["my-project@global"][PRO]["admitted"],
    )


def test_guard_models_moves_to_the_next_location_of_the_chain() -> None:
    # The SDK-shaped path has no URL to rewrite: it sends with a client of the other
    # location (same project, credentials and options).
    clock = FakeClock()
    with serve(SCENARIO, clock=clock) as server:
        guard = Guard(
            client=_vertex_client(server, "us-central1"),
            models=[f"{PRO}@global"],
            clock=clock,
            seed=5,
            log=False,
        )
        try:
            answers = [guard.models.generate_content(model=PRO, contents=f"q{i}") for i in range(6)]
            info = last_call()
        finally:
            guard.close()
        figures = _location_storm_figures(server)
    assert all(a.text for a in answers)  # nothing lost
    assert figures == (2, 4)
    assert info is not None
    assert info.model == f"{PRO}@global"
    assert any(a.category is Category.RATE_LIMITED for a in info.attempts)


async def test_guard_aio_models_moves_to_the_next_location_of_the_chain() -> None:
    clock = FakeClock()
    with serve(SCENARIO, clock=clock) as server:
        client = _vertex_client(server, "us-central1")
        guard = Guard(client=client, models=[f"{PRO}@global"], clock=clock, seed=5, log=False)
        try:
            answers = [
                await guard.aio.models.generate_content(model=PRO, contents=f"q{i}")
                for i in range(6)
            ]
            info = last_call()
        finally:
            await guard.aclose()
            await client.aio.aclose()
        figures = _location_storm_figures(server)
    assert all(a.text for a in answers)
    assert figures == (2, 4)
    assert info is not None
    assert info.model == f"{PRO}@global"
