"""Closing what belongs to an event loop when the loop ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["closed_with_loop"]


def closed_with_loop(close: Callable[[], Awaitable[object]]) -> AsyncGenerator[None, None]:
    """An async generator, started, whose end awaits `close()`. A loop keeps the async
    generators started on it and closes them as it shuts down (`asyncio.run` does, and
    so do uvloop and the test runner's loops), so connections left open by their owner
    (a transport used inside `asyncio.run` and closed after it, or never) are closed
    properly on their own loop instead of being collected later with their sockets
    open. Call it on the loop in question, and keep the generator: the loop holds it
    only weakly."""

    async def closer() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await close()

    started = closer()
    # Run it to its `yield` now (nothing to await before it): that first step is what
    # registers it with the running loop.
    with contextlib.suppress(StopIteration):
        started.asend(None).send(None)
    return started
