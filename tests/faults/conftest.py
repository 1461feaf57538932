from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import EmulatorServer, serve
from tests.faults._batch import STEADY
from tests.support.sdk_clients import close_emulator_clients


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serve(STEADY, clock=ScaledClock(50)) as server:
        yield server


@pytest.fixture(autouse=True)
async def _close_emulator_clients() -> AsyncIterator[None]:
    yield
    await close_emulator_clients()
