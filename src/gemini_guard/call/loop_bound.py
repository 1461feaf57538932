"""What belongs to an event loop: made on first use there, closed when the loop ends."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["PerLoop", "closed_with_loop"]

T = TypeVar("T")


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


class PerLoop(Generic[T]):
    """One `T` per event loop (a connection pool is bound to the loop it was made on,
    and tests and applications may run several loops over a transport's life).

    - `make()`: a new one, on the running loop;
    - `close(it)`: closes one; run when its loop ends, or by `aclose`;
    - `usable(it)`: False when it was closed behind our back (made again then).
    """

    def __init__(
        self,
        make: Callable[[], T],
        close: Callable[[T], Awaitable[object]],
        usable: Callable[[T], bool] = lambda _: True,
    ) -> None:
        self._make = make
        self._close = close
        self._usable = usable
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], T] | None = None

    def get(self) -> T:
        """The running loop's one, made on first use."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop and self._usable(last[1]):
            return last[1]  # the loop of the last call (nearly always)
        item = self._items.get(loop)
        if item is None or not self._usable(item):
            item = self._items[loop] = self._make()
            close = self._close
            self._closers[loop] = closed_with_loop(lambda: close(item))
        self._last = (weakref.ref(loop), item)
        return item

    async def aclose(self) -> None:
        """Close the running loop's one (nothing outside a loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        item = self._items.pop(loop, None)
        closer = self._closers.pop(loop, None)
        self._last = None
        if item is not None:
            await self._close(item)
        if closer is not None:
            await closer.aclose()
