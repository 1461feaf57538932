from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import Emulator

MakeClient = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def open_client() -> AsyncIterator[Callable[[Emulator], httpx.AsyncClient]]:
    """httpx clients talking to an emulator in-process (no sockets)."""
    clients: list[httpx.AsyncClient] = []

    def make(emulator: Emulator) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=emulator.app), base_url="http://emulator"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
