"""The Vertex AI surface in-process: routes, accounting per location, scenario checks."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Emulator, parse_scenario
from gemini_guard.emulator.vertex import SHARED_QUOTA_MESSAGE
from gemini_guard.errors import ScenarioError

ClientFactory = Callable[[Emulator], httpx.AsyncClient]
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
AUTH = {"authorization": "Bearer ya29.token"}


def _path(project: str, location: str, model: str, action: str, version: str = "v1") -> str:
    return (
        f"/{version}/projects/{project}/locations/{location}/publishers/google/models/"
        f"{model}:{action}"
    )


async def test_capacity_is_shared_by_projects_in_a_location_and_slides(
    open_client: ClientFactory, clock: FakeClock
) -> None:
    emu = Emulator(
        {"quotas": False, "vertex": {"locations": {"asia-east1": {"rpm": 2}}}}, clock=clock
    )
    client = open_client(emu)
    statuses = []
    for project in ("a", "b", "a"):
        reply = await client.post(
            _path(project, "asia-east1", "gemini-2.5-flash", "generateContent"),
            json=BODY,
            headers=AUTH,
        )
        statuses.append(reply.status_code)
    assert statuses == [200, 200, 429]
    assert reply.json() == {
        "error": {"code": 429, "message": SHARED_QUOTA_MESSAGE, "status": "RESOURCE_EXHAUSTED"}
    }
    clock.advance(60)
    again = await client.post(
        _path("a", "asia-east1", "gemini-2.5-flash", "generateContent", "v1beta1"),
        json=BODY,
        headers=AUTH,
    )
    assert again.status_code == 200
    projects = emu.stats()["projects"]
    assert set(projects) == {"a@asia-east1", "b@asia-east1"}
    assert projects["a@asia-east1"]["gemini-2.5-flash"]["rejected"] == {"shared_quota": 1}


async def test_the_tier_quotas_of_the_gemini_api_do_not_apply(
    open_client: ClientFactory, clock: FakeClock
) -> None:
    # free-tier flash: 10 RPM on the Gemini API; Vertex has no such per-tier limit.
    emu = Emulator("free-tier", clock=clock)
    client = open_client(emu)
    for _ in range(15):
        reply = await client.post(
            _path("p", "us-east5", "gemini-2.5-flash", "generateContent"), json=BODY, headers=AUTH
        )
        assert reply.status_code == 200


async def test_stream_without_sse_is_one_array_and_unknown_actions_are_404(
    open_client: ClientFactory, clock: FakeClock
) -> None:
    client = open_client(Emulator("healthy", clock=clock))
    array = await client.post(
        _path("p", "global", "gemini-2.5-flash", "streamGenerateContent"), json=BODY, headers=AUTH
    )
    assert array.status_code == 200
    assert isinstance(array.json(), list)
    sse = await client.post(
        _path("p", "global", "gemini-2.5-flash", "streamGenerateContent") + "?alt=sse",
        json=BODY,
        headers=AUTH,
    )
    assert sse.text.startswith("data: ")
    missing = await client.post(
        _path("p", "global", "gemini-2.5-flash", "predict"), json=BODY, headers=AUTH
    )
    assert missing.status_code == 404


def test_a_location_window_must_be_in_order() -> None:
    text = '[vertex.locations."us-central1"]\nrpm = 5\nstart = 100\nend = 50\n'
    with pytest.raises(ScenarioError, match=r"line 1: vertex\.locations\.us-central1: .*end"):
        parse_scenario(text, source="v.toml")
    with pytest.raises(ScenarioError, match="allowed here: rpm, models, start, end"):
        parse_scenario('[vertex.locations."x"]\nrpm = 5\ncapacity = 3\n')
    with pytest.raises(ScenarioError, match=r"vertex\.locations\.x\.rpm"):
        parse_scenario('[vertex.locations."x"]\nrpm = -1\n')
