from __future__ import annotations

from collections.abc import Iterator

import pytest

from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import EmulatorServer, serve
from tests.faults._batch import STEADY


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serve(STEADY, clock=ScaledClock(50)) as server:
        yield server
