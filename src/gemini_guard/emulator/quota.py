"""Exact quota accounting for the emulator, per (project, model); no I/O, no clock reads.

- RPM and input TPM are exact sliding windows of 60 seconds over the clock's
  monotonic time: a request admitted at `t` occupies [t, t + 60), with `t + 60` the
  float sum, one rule for expiry and for every wait this module advertises. A wait
  is rounded up to the float that makes `now + wait` reach the slot's end, so a
  client that waits exactly that long on a `FakeClock` is admitted, not refused a
  hair early. (On a `ScaledClock` the client's real sleep and its request take far
  longer than a rounding error, so no slack is needed there either.)
- RPD counts requests per Pacific calendar day of the clock's wall time, so it
  resets at midnight America/Los_Angeles, DST included.

`check` says which limits a request would break and, for each, how long until it
would be admitted; `admit` records it. A rejected request is never recorded, so it
costs nothing, as with the real API.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from gemini_guard.pacific import next_reset, quota_day
from gemini_guard.tiers import Limits

__all__ = ["WINDOW_SECONDS", "QuotaLedger", "Usage", "Violation"]

WINDOW_SECONDS = 60.0

QuotaKind = Literal["rpm", "tpm", "rpd"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One limit a request would exceed, and when it would next be admitted under it."""

    kind: QuotaKind
    limit: int
    retry_after: float  # seconds; for "rpd", until the next Pacific midnight


@dataclass(frozen=True, slots=True)
class Usage:
    """What a (project, model) has used in the current windows."""

    requests_last_minute: int
    tokens_last_minute: int
    requests_today: int


class _Ledger:
    __slots__ = ("day", "day_count", "minute", "minute_tokens")

    def __init__(self) -> None:
        self.minute: deque[tuple[float, int]] = deque()  # (admitted at, input tokens)
        self.minute_tokens = 0
        self.day: dt.date | None = None
        self.day_count = 0

    def expire(self, now: float, wall: float) -> None:
        while self.minute and self.minute[0][0] + WINDOW_SECONDS <= now:
            _, tokens = self.minute.popleft()
            self.minute_tokens -= tokens
        today = quota_day(wall)
        if self.day != today:
            self.day = today
            self.day_count = 0


class QuotaLedger:
    """Sliding-window usage of every (project, model)."""

    def __init__(self) -> None:
        self._ledgers: dict[tuple[str, str], _Ledger] = {}

    def _ledger(self, project: str, model: str, now: float, wall: float) -> _Ledger:
        ledger = self._ledgers.get((project, model))
        if ledger is None:
            ledger = self._ledgers[(project, model)] = _Ledger()
        ledger.expire(now, wall)
        return ledger

    def check(
        self,
        project: str,
        model: str,
        *,
        limits: Limits,
        tokens: int,
        now: float,
        wall: float,
        requests: int = 1,
    ) -> list[Violation]:
        """The limits that admitting `requests` requests (one call: a batch of embeddings
        counts each item) of `tokens` input tokens in all now would exceed."""
        ledger = self._ledger(project, model, now, wall)
        out: list[Violation] = []
        window = ledger.minute
        if limits.rpm is not None and len(window) + requests > limits.rpm:
            wait = _rpm_wait(window, limits.rpm, now, requests)
            out.append(Violation("rpm", limits.rpm, wait))
        if limits.tpm is not None and ledger.minute_tokens + tokens > limits.tpm:
            out.append(
                Violation(
                    "tpm",
                    limits.tpm,
                    _tpm_wait(window, ledger.minute_tokens, tokens, limits.tpm, now),
                )
            )
        if limits.rpd is not None and ledger.day_count + requests > limits.rpd:
            out.append(Violation("rpd", limits.rpd, next_reset(wall) - wall))
        return out

    def admit(
        self, project: str, model: str, *, tokens: int, now: float, wall: float, requests: int = 1
    ) -> None:
        """Record an admitted call of `requests` requests (its tokens on the first)."""
        ledger = self._ledger(project, model, now, wall)
        ledger.minute.append((now, tokens))
        ledger.minute.extend((now, 0) for _ in range(requests - 1))
        ledger.minute_tokens += tokens
        ledger.day_count += requests

    def usage(self, project: str, model: str, *, now: float, wall: float) -> Usage:
        ledger = self._ledger(project, model, now, wall)
        return Usage(len(ledger.minute), ledger.minute_tokens, ledger.day_count)


def _rpm_wait(window: deque[tuple[float, int]], rpm: int, now: float, requests: int = 1) -> float:
    if rpm == 0 or requests > rpm:
        return WINDOW_SECONDS  # it never fits; say "a minute", as the API does
    # len(window) - rpm + requests must leave; the last of them is at that index.
    leaving = window[len(window) - rpm + requests - 1][0]
    return _until(leaving + WINDOW_SECONDS, now)


def _tpm_wait(
    window: deque[tuple[float, int]], used: int, tokens: int, tpm: int, now: float
) -> float:
    if tokens > tpm:
        return WINDOW_SECONDS  # larger than the whole budget: it will never pass
    for admitted_at, spent in window:
        used -= spent
        if used + tokens <= tpm:
            return _until(admitted_at + WINDOW_SECONDS, now)
    return 0.0  # unreachable: an empty window always has room for tokens <= tpm


def _until(end: float, now: float) -> float:
    """Seconds from `now` to `end`, such that `now + wait >= end` in floats.

    `end - now` rounds, and `now + (end - now)` may land one ulp short of `end`: a
    client waiting exactly that long would be refused again for a wait of 1e-14 s.
    """
    if end <= now:
        return 0.0
    wait = end - now
    while now + wait < end:
        wait = math.nextafter(wait, math.inf)
    return wait
