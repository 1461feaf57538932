"""Concurrent identical calls share one upstream call.

The first caller of a key (the leader) runs the call; callers that arrive while it is
in flight (followers) wait for its outcome instead of sending their own. An error is
shared too: fifty callers behind one failing request get its error, not fifty more
requests. Nothing is kept once the call ends (that is the cache's job).

Per process: threads share through `Coalescer`, asyncio tasks of one event loop
through `AsyncCoalescer`. Across processes calls are not coalesced (the stored entry
serves them once the first call has answered).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["AsyncCoalescer", "Coalescer"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class Coalescer:
    """Threads: one call per key in flight; `run` returns (value, shared)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight[Any]] = {}

    def run(self, key: str, call: Callable[[], T]) -> tuple[T, bool]:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            # Blocks on the leader's outcome, not on time: the leader's own request
            # is bounded by the Guard's timeouts.
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value, True  # type: ignore[return-value]
        try:
            flight.value = call()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.value, False

    def in_flight(self) -> int:
        return len(self._flights)


class AsyncCoalescer:
    """asyncio: the leader's call runs as its own task, so a follower being cancelled
    (or the leader) never cancels it for the others."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[int, str], asyncio.Task[Any]] = {}
        self._followers = 0

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        slot = (id(asyncio.get_running_loop()), key)
        task = self._tasks.get(slot)
        if task is None:

            async def lead() -> T:
                try:
                    return await call()
                finally:
                    del self._tasks[slot]

            task = self._tasks[slot] = asyncio.ensure_future(lead())
            value: T = await asyncio.shield(task)
            return value, False
        self._followers += 1
        try:
            value = await asyncio.shield(task)
        finally:
            self._followers -= 1
        return value, True

    def in_flight(self) -> int:
        return len(self._tasks)

    def waiting(self) -> int:
        """Callers waiting now on another caller's call (followers)."""
        return self._followers
