from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google import genai
from google.genai import types

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, serve


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def healthy(clock: FakeClock) -> Iterator[EmulatorServer]:
    with serve("healthy", clock=clock) as server:
        yield server


def sdk_client(
    server: EmulatorServer | str, *, key: str = "test-key", api_version: str | None = None
) -> genai.Client:
    """The real google-genai client, pointed at the emulator (a server or its base URL)."""
    base_url = server if isinstance(server, str) else server.base_url
    options = types.HttpOptions(base_url=base_url, api_version=api_version)
    return genai.Client(api_key=key, http_options=options)


MakeClient = Callable[..., genai.Client]
