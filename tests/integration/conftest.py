"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.sdk_clients import close_emulator_clients


@pytest.fixture(autouse=True)
async def _close_emulator_clients() -> AsyncIterator[None]:
    yield
    await close_emulator_clients()
