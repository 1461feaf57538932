"""One source of time for the whole project.

Every module reads time and sleeps only through a `Clock`, so tests move time
instead of waiting (`FakeClock`) and the emulator, the Guard and the demo can run
a minute of quota in a second (`ScaledClock`).

- `SystemClock`: the real clock.
- `ScaledClock(factor, epoch=...)`: real time running `factor` times faster
  around `epoch`; processes given the same epoch agree on the scaled time.
- `FakeClock`: moves only when told (`advance`) or when something sleeps on it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time as _time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "ScaledClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the project needs of time: two readings and two ways to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def time(self) -> float:
        """Wall-clock time in epoch seconds (used for the Pacific-midnight reset)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for `seconds` of this clock's time."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ScaledClock:
    """Real time running `factor` times faster around `epoch` (wall seconds).

    Readings advance `factor` seconds per real second; a sleep of `s` lasts
    `s / factor` real seconds. `monotonic()` is the scaled number of seconds since
    `epoch`, derived from the real monotonic clock, so two processes created with
    the same epoch read (almost) the same value at the same instant.
    """

    __slots__ = ("_base", "_epoch", "_factor", "_mono0")

    def __init__(self, factor: float, *, epoch: float | None = None) -> None:
        if not factor > 0:
            raise ValueError(f"ScaledClock factor must be > 0, got {factor!r}")
        now_wall = _time.time()
        self._factor = float(factor)
        self._epoch = now_wall if epoch is None else float(epoch)
        self._mono0 = _time.monotonic()
        # Real seconds that had already passed since the epoch when we were made.
        self._base = now_wall - self._epoch

    @property
    def factor(self) -> float:
        return self._factor

    @property
    def epoch(self) -> float:
        return self._epoch

    def monotonic(self) -> float:
        return (self._base + _time.monotonic() - self._mono0) * self._factor

    def time(self) -> float:
        return self._epoch + self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds / self._factor)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._factor)

    def __repr__(self) -> str:
        return f"ScaledClock({self._factor:g}, epoch={self._epoch:.3f})"


class FakeClock:
    """A clock that moves only when told to, for tests that never sleep.

    - `advance(s)` moves time forward and wakes every sleeper whose time has come.
    - `sleep(s)` (threads) moves time forward by `s` at once.
    - `asleep(s)` (asyncio) parks the task until time reaches its deadline. When
      every task of the loop has parked, time jumps to the earliest deadline, so
      concurrent sleepers overlap the way they would on a real clock.

    Every requested sleep is recorded in `sleeps`, in order, for assertions.
    """

    # How many loop iterations to wait for other ready tasks before jumping time.
    _SETTLE_ROUNDS = 8

    def __init__(self, *, start: float = 1_767_225_600.0, monotonic: float = 0.0) -> None:
        # Default start: 2026-01-01T00:00:00Z, a fixed and readable instant.
        self._offset = float(start) - float(monotonic)
        self._now = float(monotonic)
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._jump_pending = False
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._offset + self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake the sleepers that are due."""
        if seconds < 0:
            raise ValueError(f"FakeClock cannot go back in time (advance({seconds!r}))")
        with self._lock:
            self._now += seconds
        self._wake_due()

    def set_time(self, wall: float) -> None:
        """Jump forward to wall-clock time `wall` (epoch seconds)."""
        self.advance(max(0.0, wall - self.time()))

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            heapq.heappush(self._waiters, (self._now + seconds, next(self._seq), fut))
        if not self._jump_pending:
            self._jump_pending = True
            loop.call_soon(self._settle, loop, self._SETTLE_ROUNDS)
        await fut

    def _settle(self, loop: asyncio.AbstractEventLoop, rounds: int) -> None:
        # Let tasks that are ready run (and maybe park) before time jumps.
        if rounds > 0:
            loop.call_soon(self._settle, loop, rounds - 1)
            return
        self._jump_pending = False
        with self._lock:
            live = [w for w in self._waiters if not w[2].done()]
            heapq.heapify(live)
            self._waiters = live
            if not live:
                return
            self._now = max(self._now, live[0][0])
        self._wake_due()
        with self._lock:
            more = bool(self._waiters)
        if more and not self._jump_pending:
            self._jump_pending = True
            loop.call_soon(self._settle, loop, self._SETTLE_ROUNDS)

    def _wake_due(self) -> None:
        due: list[asyncio.Future[None]] = []
        with self._lock:
            while self._waiters and self._waiters[0][0] <= self._now:
                due.append(heapq.heappop(self._waiters)[2])
        for fut in due:
            if fut.done():
                continue
            fut_loop = fut.get_loop()
            if fut_loop.is_closed():
                continue
            fut_loop.call_soon_threadsafe(_resolve, fut)

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._now:.3f})"


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
