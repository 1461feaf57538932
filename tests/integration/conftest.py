"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.sdk_clients import close_emulator_clients, guards_made


@pytest.fixture(autouse=True)
async def _close_emulator_clients() -> AsyncIterator[None]:
    with guards_made() as guards:
        yield
    for guard in guards:  # closing twice is harmless: a test may have closed it
        await guard.aclose()
    await close_emulator_clients()
