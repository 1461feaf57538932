"""Real google-genai clients pointed at an emulator, closed after each test.

Unclosed sockets are ResourceWarnings, and warnings are errors in this suite: every
client made here, and every Guard made during a test (its `guard.client` has HTTP
clients of its own), is closed (sync and async transports) by the autouse fixture in
tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google import genai
from google.genai import types

from gemini_guard.emulator import EmulatorServer
from gemini_guard.guard import Guard

__all__ = ["close_emulator_clients", "emulator_client", "guards_made", "keep_open"]

_open: list[genai.Client] = []


def emulator_client(server: EmulatorServer, key: str) -> genai.Client:
    """A client with `key` whose requests go to `server`."""
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.base_url))
    _open.append(client)
    return client


def keep_open(client: genai.Client) -> genai.Client:
    """Close `client` (made elsewhere) with the others after the test."""
    _open.append(client)
    return client


async def close_emulator_clients() -> None:
    while _open:
        client = _open.pop()
        await client.aio.aclose()
        client.close()


@contextmanager
def guards_made() -> Iterator[list[Guard]]:
    """Every Guard constructed inside the block, to close after it."""
    made: list[Guard] = []
    original = Guard.__init__

    def noting(self: Guard, *args: Any, **options: Any) -> None:
        original(self, *args, **options)
        made.append(self)

    Guard.__init__ = noting  # type: ignore[method-assign]
    try:
        yield made
    finally:
        Guard.__init__ = original  # type: ignore[method-assign]
