"""The sliding-window reservation math, with no I/O: every store runs these rules.

A reservation is a *slot*: one request plus its input tokens, scheduled to start at
`start` and counted by the server at some instant in `[start, end]`, where `end` is
the latest moment the server can have seen it:

- while the request is in flight, `end = start + allowance` (the latency we expect),
  and never earlier than the last time the ledger looked and it was still in
  flight (an unanswered request may still be on its way to the server);
- once its response is back, `end` is the response time (the server counted the
  request when it arrived, which is no later than when its answer came back).

The rule, for a window of `period` seconds: a new slot may start at `t` only if the
slots that can still share a server window with it (those with `end + period > t`)
leave room for one more request and for its tokens. Starts are handed out in FIFO
order (`t` is never before the previous start), which makes that single check exact:
no window `(s - period, s]` of the server's clock ever holds more than the limit,
whatever the latencies were, as long as in-flight requests answer within their
allowance.

Per-day quotas (RPD, TPD) use fixed windows: the Pacific calendar day of the start.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from gemini_guard.pacific import day_start, next_reset, quota_day

__all__ = [
    "MAX_FLIGHT",
    "Budget",
    "DayBook",
    "Granted",
    "Refused",
    "SlotBook",
    "day_index",
    "earliest_start",
]


# An unanswered request is held in the window at most this long after its start;
# then its caller is assumed gone (crashed, killed) and the slot ends as booked.
# HTTP clients give up on a request well before ten minutes.
MAX_FLIGHT = 600.0


@dataclass(frozen=True, slots=True)
class Budget:
    """The limits one reservation is checked against; None means "no such limit"."""

    requests: int | None = None  # per `period` (RPM)
    tokens: int | None = None  # input tokens per `period` (TPM)
    day_requests: int | None = None  # per Pacific day (RPD)
    day_tokens: int | None = None  # input tokens per Pacific day (TPD)
    period: float = 60.0

    @property
    def unlimited(self) -> bool:
        return (
            self.requests is None
            and self.tokens is None
            and self.day_requests is None
            and self.day_tokens is None
        )


@dataclass(frozen=True, slots=True)
class Granted:
    """A slot was booked: send at `start` (wall seconds)."""

    start: float
    slot_id: str
    day: int  # ordinal of the Pacific day the slot was counted in
    origin: str = "primary"  # which backend booked it (a degraded store uses "fallback")


@dataclass(frozen=True, slots=True)
class Refused:
    """No slot was booked.

    `why` is "day" (the Pacific day's quota is spent; nothing before `until`) or
    "wait" (the earliest start, `until`, is past the caller's deadline).
    """

    why: str
    until: float
    detail: str = ""


def earliest_start(
    ends: Sequence[float],
    tokens_of: Sequence[int],
    *,
    total_tokens: int,
    not_before: float,
    budget: Budget,
    tokens: int,
) -> float:
    """The earliest start `t >= not_before` at which a slot of `tokens` fits.

    `ends` are the ends of the booked slots in ascending order, `tokens_of` their
    tokens (same order), `total_tokens` their sum. Slots with `end + period <= t` are
    out of the window starting at `t`; the caller may or may not have dropped them.
    A request bigger than the whole token budget waits until the window is empty
    (callers reject those beforehand when the limit is known to be hard).
    """
    period = budget.period
    t = not_before
    n = len(ends)
    if budget.requests is not None and n:
        # The window may hold `requests - 1` others: the oldest `n - requests + 1`
        # must have left it. Ends are sorted, so that is one index.
        must_leave = n - max(budget.requests, 1) + 1
        if must_leave > 0:
            leave_at = ends[must_leave - 1] + period
            if leave_at > t:
                t = leave_at
    if budget.tokens is not None and tokens_of:
        room_for_others = max(budget.tokens, tokens) - tokens
        remaining = total_tokens
        for end, slot_tokens in zip(ends, tokens_of, strict=True):
            if remaining <= room_for_others:
                break
            if end + period > t:
                t = end + period
            remaining -= slot_tokens
    return t


def day_index(wall: float) -> tuple[int, float]:
    """(ordinal of the Pacific day of `wall`, wall time that day ends)."""
    return quota_day(wall).toordinal(), next_reset(wall)


class DayBook:
    """Requests and tokens counted per Pacific day, for the days still ahead.

    Keeps only today and the days after it (a reservation queued past midnight
    counts in the next day), so it stays a handful of entries.
    """

    __slots__ = ("_cache", "days")

    def __init__(self) -> None:
        # day ordinal -> [requests, tokens, spent flag (0/1)]
        self.days: dict[int, list[int]] = {}
        self._cache: tuple[float, float, int] = (0.0, 0.0, 0)  # [start, end) -> ordinal

    def day_of(self, wall: float) -> tuple[int, float]:
        start, end, ordinal = self._cache
        if start <= wall < end:
            return ordinal, end
        ordinal, end = day_index(wall)
        # A Pacific day lasts 23 to 25 hours: cache its true [start, end).
        self._cache = (day_start(wall), end, ordinal)
        return ordinal, end

    def prune(self, today: int) -> None:
        if len(self.days) > 1 or (self.days and next(iter(self.days)) < today):
            for day in [d for d in self.days if d < today]:
                del self.days[day]

    def check(self, day: int, day_end: float, budget: Budget, tokens: int) -> Refused | None:
        counts = self.days.get(day)
        if counts is None:
            return None
        requests, used_tokens, spent = counts
        if spent:
            return Refused("day", day_end, "the server reported the day's quota spent")
        if budget.day_requests is not None and requests + 1 > budget.day_requests:
            return Refused("day", day_end, f"{requests} of {budget.day_requests} requests used")
        if budget.day_tokens is not None and used_tokens + tokens > max(budget.day_tokens, tokens):
            return Refused("day", day_end, f"{used_tokens} of {budget.day_tokens} tokens used")
        return None

    def add(self, day: int, requests: int, tokens: int) -> None:
        counts = self.days.get(day)
        if counts is None:
            self.days[day] = [max(requests, 0), max(tokens, 0), 0]
        else:
            counts[0] = max(counts[0] + requests, 0)
            counts[1] = max(counts[1] + tokens, 0)

    def mark_spent(self, day: int) -> None:
        counts = self.days.setdefault(day, [0, 0, 0])
        counts[2] = 1


class SlotBook:
    """The booked slots of one (project, model), kept sorted by end, plus its days.

    The in-process form of the ledger, used by the memory store directly and by the
    SQLite store on the rows of one transaction. Memory is bounded: slots leave the
    book once `end + period` has passed, so it holds at most the limit's worth of
    slots per window plus the ones queued ahead.
    """

    __slots__ = (
        "days",
        "ends",
        "flight_ends",
        "ids",
        "in_flight",
        "last_start",
        "tokens",
        "total_tokens",
    )

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.ids: list[str] = []
        self.tokens: list[int] = []
        self.total_tokens = 0
        self.last_start = float("-inf")
        self.days = DayBook()
        # Slots not yet answered (id -> hold them until), and a heap of (end, id)
        # to find the late ones fast.
        self.in_flight: dict[str, float] = {}
        self.flight_ends: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self.ends)

    def drop_expired(self, now: float, period: float) -> None:
        """Forget slots that can no longer share a window with any start >= now."""
        ends = self.ends
        gone = 0
        for end in ends:
            if end + period > now:
                break
            gone += 1
        if gone:
            self.total_tokens -= sum(self.tokens[:gone])
            del ends[:gone]
            del self.ids[:gone]
            del self.tokens[:gone]

    def insert(self, slot_id: str, end: float, tokens: int, *, in_flight: bool = False) -> None:
        at = bisect_right(self.ends, end)
        self.ends.insert(at, end)
        self.ids.insert(at, slot_id)
        self.tokens.insert(at, tokens)
        self.total_tokens += tokens
        if in_flight:
            self.in_flight.setdefault(slot_id, end + MAX_FLIGHT)
            heapq.heappush(self.flight_ends, (end, slot_id))

    def hold_late(self, now: float) -> None:
        """Unanswered slots whose expected end has passed end no earlier than now."""
        heap = self.flight_ends
        while heap and heap[0][0] < now:
            end, slot_id = heapq.heappop(heap)
            hold_until = self.in_flight.get(slot_id)
            if hold_until is None:
                continue  # answered meanwhile
            if hold_until <= now:
                del self.in_flight[slot_id]  # given up: the slot ends as it stands
                continue
            tokens = self.remove(slot_id, end)
            if tokens is None:
                del self.in_flight[slot_id]
                continue
            self.insert(slot_id, now, tokens, in_flight=True)

    def remove(self, slot_id: str, end_hint: float) -> int | None:
        """Remove a slot; returns its tokens, or None when it is not in the book."""
        at = bisect_right(self.ends, end_hint) - 1
        # Look near the hint first (the usual case), then everywhere.
        for index in (at, at - 1, at + 1):
            if 0 <= index < len(self.ids) and self.ids[index] == slot_id:
                return self._pop(index)
        try:
            index = self.ids.index(slot_id)
        except ValueError:
            return None
        return self._pop(index)

    def _pop(self, index: int) -> int:
        del self.ends[index]
        del self.ids[index]
        tokens = self.tokens.pop(index)
        self.total_tokens -= tokens
        return tokens

    def book(
        self,
        *,
        slot_id: str,
        now: float,
        budget: Budget,
        tokens: int,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused:
        """Book the earliest slot that fits, or say why none was booked."""
        self.hold_late(now)
        self.drop_expired(now, budget.period)
        start = earliest_start(
            self.ends,
            self.tokens,
            total_tokens=self.total_tokens,
            not_before=max(now, self.last_start),
            budget=budget,
            tokens=tokens,
        )
        day, day_end = self.days.day_of(start)
        self.days.prune(self.days.day_of(now)[0])
        refused = self.days.check(day, day_end, budget, tokens)
        if refused is not None:
            return refused
        if deadline is not None and start > deadline:
            return Refused("wait", start)
        self.insert(slot_id, start + allowance, tokens, in_flight=True)
        self.last_start = start
        self.days.add(day, 1, tokens)
        return Granted(start=start, slot_id=slot_id, day=day)

    def settle(
        self,
        *,
        slot_id: str,
        end_hint: float,
        day: int,
        sent: bool,
        end: float,
        tokens: int,
    ) -> None:
        """Record how a booked slot ended: released (not sent), or answered at `end`."""
        old_tokens = self.remove(slot_id, end_hint)
        self.in_flight.pop(slot_id, None)
        if not sent:
            if old_tokens is not None:
                self.days.add(day, -1, -old_tokens)
            return
        self.insert(slot_id, end, tokens)
        if old_tokens is not None:
            self.days.add(day, 0, tokens - old_tokens)
        # else: the slot left the book already (an answer slower than the whole
        # window); it is back in at its true end, and its day was counted at booking.
