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
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from gemini_guard.pacific import day_start, next_reset, quota_day

__all__ = [
    "ANSWERED",
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
# A late slot (unanswered past its expected end) is moved to end "now"; it is looked at
# again this much later, not at every booking. Moving it costs a search and two list
# shifts: with many requests in flight, doing it on every booking made each booking
# cost work in proportion to the requests in flight times the window. Meanwhile its end
# trails "now" by at most this much, which still covers the moment the server counted
# it (when the request arrived, before now).
HOLD_STEP = 0.1


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


# What an answered attempt sent without a permit is recorded with: no limit to
# check, so booking it only counts it.
NO_LIMITS = Budget()


class Granted(NamedTuple):
    """A slot was booked: send at `start` (wall seconds).

    An immutable NamedTuple rather than a frozen dataclass: one is built on every
    acquire, and a tuple is built several times faster.
    """

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


_new_tuple = tuple.__new__

# The one id of every slot counted by `SlotBook.record` ("~" starts no slot id a
# limiter makes; the Redis store refuses such ids from callers).
ANSWERED = "~answered"


def earliest_start(
    ends: Sequence[float],
    tokens_of: Sequence[int],
    *,
    total_tokens: int,
    not_before: float,
    budget: Budget,
    tokens: int,
    first: int = 0,
) -> float:
    """The earliest start `t >= not_before` at which a slot of `tokens` fits.

    `ends[first:]` are the ends of the booked slots in ascending order, `tokens_of`
    their tokens (same order), `total_tokens` their sum; what lies before `first` is
    not counted. Slots with `end + period <= t` are out of the window starting at
    `t`; the caller may or may not have dropped them.
    A request bigger than the whole token budget waits until the window is empty
    (callers reject those beforehand when the limit is known to be hard).
    """
    period = budget.period
    t = not_before
    n = len(ends) - first
    if budget.requests is not None and n > 0:
        # The window may hold `requests - 1` others: the oldest `n - requests + 1`
        # must have left it. Ends are sorted, so that is one index.
        must_leave = n - max(budget.requests, 1) + 1
        if must_leave > 0:
            leave_at = ends[first + must_leave - 1] + period
            if leave_at > t:
                t = leave_at
    if budget.tokens is not None and n > 0:
        room_for_others = max(budget.tokens, tokens) - tokens
        remaining = total_tokens
        for index in range(first, len(ends)):
            if remaining <= room_for_others:
                break
            end = ends[index]
            if end + period > t:
                t = end + period
            remaining -= tokens_of[index]
    return t


def day_index(wall: float) -> tuple[int, float]:
    """(ordinal of the Pacific day of `wall`, wall time that day ends)."""
    return quota_day(wall).toordinal(), next_reset(wall)


class DayBook:
    """Requests and tokens counted per Pacific day, for the days still ahead.

    Keeps only today and the days after it (a reservation queued past midnight
    counts in the next day), so it stays a handful of entries.
    """

    __slots__ = ("_cache", "_pruned", "days")

    def __init__(self) -> None:
        # day ordinal -> [requests, tokens, spent flag (0/1)]
        self.days: dict[int, list[int]] = {}
        self._cache: tuple[float, float, int] = (0.0, 0.0, 0)  # [start, end) -> ordinal
        self._pruned = 0  # the day up to which `prune` has already run

    def day_of(self, wall: float) -> tuple[int, float]:
        start, end, ordinal = self._cache
        if start <= wall < end:
            return ordinal, end
        ordinal, end = day_index(wall)
        # A Pacific day lasts 23 to 25 hours: cache its true [start, end).
        self._cache = (day_start(wall), end, ordinal)
        return ordinal, end

    def prune(self, today: int) -> None:
        if today <= self._pruned:
            return  # already done for this day: the common case costs one comparison
        self._pruned = today
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


def confirm_wait(
    others: Sequence[tuple[float, int]],
    *,
    now: float,
    budget: Budget,
    tokens: int,
) -> float:
    """Seconds a slot about to be sent at `now` must still wait, given the `others`.

    `others` are (end, tokens) of the slots already sent or due (start <= now),
    ascending by end. The check is the booking rule itself, made again at the
    moment of sending against what has really happened since the plan.
    """
    ends = [end for end, _ in others]
    tokens_of = [count for _, count in others]
    start = earliest_start(
        ends,
        tokens_of,
        total_tokens=sum(tokens_of),
        not_before=now,
        budget=budget,
        tokens=tokens,
    )
    return start - now


class SlotBook:
    """The booked slots of one (project, model), kept sorted by end, plus its days.

    The in-process form of the ledger, used by the memory store directly and by the
    SQLite store on the rows of one transaction. Memory is bounded: slots leave the
    book once `end + period` has passed, so it holds at most the limit's worth of
    slots per window plus the ones queued ahead (a third more while the lists wait
    to be compacted).

    Slots that left are first only counted out (`head`: the lists' first `head`
    entries are gone) and cut from the lists once they are a quarter of them. Cutting
    the front of a list moves all the rest: at tier-3 rates a window holds tens of
    thousands of slots and one leaves on nearly every booking, so cutting each time
    made a booking cost grow with the window.

    `book` runs on every request: it is written for speed (locals, early outs, no
    objects built but the answer).
    """

    __slots__ = (
        "days",
        "ends",
        "flight_at",
        "flight_ends",
        "head",
        "ids",
        "in_flight",
        "last_start",
        "tokens",
        "total_tokens",
    )

    def __init__(self) -> None:
        # Ends as machine floats: a window at tier-3 rates holds hundreds of thousands
        # of slots, and a Python float in a list costs four times the 8 bytes.
        self.ends: array[float] = array("d")
        self.ids: list[str] = []
        self.tokens: list[int] = []
        self.head = 0  # the first `head` slots of the lists have left the book
        self.total_tokens = 0  # of the slots still in the book
        self.last_start = float("-inf")
        self.days = DayBook()
        # Slots not yet answered: id -> (hold them until, planned start), and a heap
        # of (when to look at it, id, its end then) to find the late ones fast.
        self.in_flight: dict[str, tuple[float, float]] = {}
        self.flight_ends: list[tuple[float, str, float]] = []
        # Where each unanswered slot ends now. Its caller names it by the end it was
        # booked at, but confirming and holding move it; without this, finding it
        # again meant a scan of the whole window (tens of thousands of slots).
        self.flight_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.ends) - self.head

    def drop_expired(self, now: float, period: float) -> None:
        """Forget slots that can no longer share a window with any start >= now."""
        ends, head = self.ends, self.head
        if head == len(ends) or ends[head] + period > now:
            return
        gone = bisect_right(ends, now - period, lo=head)
        # bisect works on `now - period`; float rounding may differ from the exact
        # rule by one slot, so step back while the rule says it still counts.
        while gone > head and ends[gone - 1] + period > now:
            gone -= 1
        if gone > head:
            self.total_tokens -= sum(self.tokens[head:gone])
            self.head = gone
            if gone >= 64 and 4 * gone >= len(ends):
                self._compact()

    def _compact(self) -> None:
        """Cut the slots that left from the lists (see the class docstring)."""
        head = self.head
        del self.ends[:head]
        del self.ids[:head]
        del self.tokens[:head]
        self.head = 0

    def insert(
        self,
        slot_id: str,
        end: float,
        tokens: int,
        *,
        in_flight: bool = False,
        start: float | None = None,
        recheck: float | None = None,
    ) -> None:
        ends = self.ends
        # The usual case: the newest slot ends last.
        at = len(ends) if not ends or end >= ends[-1] else bisect_right(ends, end)
        if at < self.head:
            # An answer slower than the whole window, back at its true end among the
            # slots that left: cut those first so that it counts, as it did before.
            self._compact()
            at = bisect_right(ends, end)
        ends.insert(at, end)
        self.ids.insert(at, slot_id)
        self.tokens.insert(at, tokens)
        self.total_tokens += tokens
        if in_flight:
            self.flight_at[slot_id] = end
            if slot_id not in self.in_flight:
                self.in_flight[slot_id] = (end + MAX_FLIGHT, end if start is None else start)
            heapq.heappush(self.flight_ends, (end if recheck is None else recheck, slot_id, end))

    def hold_late(self, now: float) -> None:
        """Unanswered slots whose expected end has passed end no earlier than now."""
        heap = self.flight_ends
        while heap and heap[0][0] < now:
            _, slot_id, end = heapq.heappop(heap)
            held = self.in_flight.get(slot_id)
            if held is None:
                continue  # answered meanwhile
            index = self._index(slot_id, end)
            if index < 0:
                del self.in_flight[slot_id]
                self.flight_at.pop(slot_id, None)
                continue
            if self.ends[index] != end:
                # A stale entry: the slot has moved since (confirm planned it again,
                # or it was held already), and its own entry is in the heap. Acting
                # on this one would pull its end back to now, or give up a slot that
                # has not yet reached its end.
                continue
            if held[0] <= now:
                del self.in_flight[slot_id]  # given up: the slot ends as it stands
                self.flight_at.pop(slot_id, None)
                continue
            self.insert(slot_id, now, self._pop(index), in_flight=True, recheck=now + HOLD_STEP)

    def _index(self, slot_id: str, end_hint: float) -> int:
        """Where a slot is in the book (-1: not there); `end_hint` is where to look first."""
        ids, ends, head = self.ids, self.ends, self.head
        end_hint = self.flight_at.get(slot_id, end_hint)
        high = bisect_right(ends, end_hint, lo=head)
        # Look at the hint first (the usual case): the slots ending exactly then, from
        # the newest. At high rates many end at the same moment, so this range, not
        # the whole window, is what a busy book searches.
        low = bisect_left(ends, end_hint, lo=head, hi=high)
        for index in range(high - 1, low - 1, -1):
            if ids[index] == slot_id:
                return index
        for index in (high, low - 1):  # float rounding: one step either side
            if head <= index < len(ids) and ids[index] == slot_id:
                return index
        try:  # the slot moved since the hint was taken: anywhere still in the book
            return ids.index(slot_id, head)
        except ValueError:
            return -1

    def remove(self, slot_id: str, end_hint: float) -> int | None:
        """Remove a slot; returns its tokens, or None when it is not in the book."""
        index = self._index(slot_id, end_hint)
        return None if index < 0 else self._pop(index)

    def _pop(self, index: int) -> int:
        self.flight_at.pop(self.ids[index], None)
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
        """Book the earliest slot that fits, or say why none was booked.

        The same rule as `earliest_start`, with the common cases inlined: a window
        with room for one more request and its tokens costs no loop at all.
        """
        heap = self.flight_ends
        if heap and heap[0][0] < now:
            self.hold_late(now)
        period = budget.period
        ends = self.ends
        head = self.head
        if head < len(ends) and ends[head] + period <= now:
            self.drop_expired(now, period)
            head = self.head
        last = self.last_start
        start = now if now > last else last
        n = len(ends) - head
        requests = budget.requests
        max_tokens = budget.tokens
        if (requests is not None and n >= (requests if requests > 1 else 1)) or (
            max_tokens is not None
            and self.total_tokens > (max_tokens if max_tokens > tokens else tokens) - tokens
        ):
            start = earliest_start(
                ends,
                self.tokens,
                total_tokens=self.total_tokens,
                not_before=start,
                budget=budget,
                tokens=tokens,
                first=head,
            )
        days = self.days
        day, day_end = days.day_of(start)
        if day > days._pruned:
            days.prune(days.day_of(now)[0])
        counts = days.days.get(day)
        if counts is not None:
            refused = days.check(day, day_end, budget, tokens)
            if refused is not None:
                return refused
        if deadline is not None and start > deadline:
            return Refused("wait", start)
        end = start + allowance
        if not ends or end >= ends[-1]:  # the usual case: the newest slot ends last
            ends.append(end)
            self.ids.append(slot_id)
            self.tokens.append(tokens)
            self.total_tokens += tokens
            self.in_flight[slot_id] = (end + MAX_FLIGHT, start)
            self.flight_at[slot_id] = end
            heapq.heappush(heap, (end, slot_id, end))
        else:
            self.insert(slot_id, end, tokens, in_flight=True, start=start)
        self.last_start = start
        if counts is None:
            days.days[day] = [1, tokens, 0]
        else:
            counts[0] += 1
            counts[1] += tokens
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (same value).
        return _new_tuple(Granted, (start, slot_id, day, "primary"))

    def record(self, *, start: float, end: float, tokens: int, period: float) -> None:
        """Count a slot already answered, sent at `start` without a permit and
        answered at `end` (see `QuotaLimiter.tally`): what booking it with no limits
        and settling it would do, without the in-flight bookkeeping. Nothing is
        counted once the day is marked spent, as a booking would be refused.

        No caller ever names such a slot again (it is not released, confirmed or
        settled), so all of them share one id: at thousands of requests a second, a
        string per slot was most of the memory of the minute's window."""
        heap = self.flight_ends
        if heap and heap[0][0] < start:
            self.hold_late(start)
        ends = self.ends
        if self.head < len(ends) and ends[self.head] + period <= start:
            self.drop_expired(start, period)
        last = self.last_start
        begin = start if start > last else last
        days = self.days
        day = days.day_of(begin)[0]
        if day > days._pruned:
            days.prune(days.day_of(start)[0])
        counts = days.days.get(day)
        if counts is not None and counts[2]:
            return  # the day is spent
        self.insert(ANSWERED, end, tokens)
        self.last_start = begin
        if counts is None:
            days.days[day] = [1, tokens, 0]
        else:
            counts[0] += 1
            counts[1] += tokens

    def confirm(
        self,
        *,
        slot_id: str,
        end_hint: float,
        now: float,
        budget: Budget,
        allowance: float,
    ) -> float:
        """The slot is about to be sent at `now`: seconds it must still wait (0.0: send).

        A permit is a plan made from the ends the ledger expected then; a request
        sent late (a starved thread, a paused process) is counted by the server
        later than planned, which can make the slots planned after it early. So
        just before sending, the slot is checked again against the slots already
        sent or due (planned start <= now; later plans are checked when they are
        sent). On 0.0 its end moves to `now + allowance`; otherwise it is planned
        again at `now + wait` and the caller confirms again after waiting.
        """
        if self.flight_ends and self.flight_ends[0][0] < now:
            self.hold_late(now)
        ids, head = self.ids, self.head
        last = len(ids) - 1
        if last >= head and ids[last] == slot_id:
            # The usual case: the newest slot of the book, and the book has room for
            # it on top of every other slot. Update it where it stands: the same
            # result as the remove and insert below, without rebuilding the lists.
            ends = self.ends
            own = self.tokens[last]
            requests, max_tokens = budget.requests, budget.tokens
            end = now + allowance
            if (
                (requests is None or last - head < (requests if requests > 1 else 1))
                and (
                    max_tokens is None
                    or self.total_tokens - own <= (max_tokens if max_tokens > own else own) - own
                )
                and (last == head or ends[last - 1] <= end)
            ):
                ends[last] = end
                self.flight_at[slot_id] = end
                held = self.in_flight.get(slot_id)
                self.in_flight[slot_id] = (end + MAX_FLIGHT if held is None else held[0], now)
                heapq.heappush(self.flight_ends, (end, slot_id, end))
                return 0.0
        tokens = self.remove(slot_id, end_hint)
        if tokens is None:
            return 0.0  # no longer booked (released, or held so long it was given up)
        held = self.in_flight.pop(slot_id, None)
        in_flight = self.in_flight
        period = budget.period
        requests, max_tokens = budget.requests, budget.tokens
        if (requests is None or len(self) < max(requests, 1)) and (
            max_tokens is None or self.total_tokens <= max(max_tokens, tokens) - tokens
        ):
            wait = 0.0  # fits even counting every slot of the book: no need to sort them out
        else:
            first = self.head
            others = [
                (end, count)
                for end, count, other in zip(
                    self.ends[first:], self.tokens[first:], self.ids[first:], strict=True
                )
                if end + period > now and (other not in in_flight or in_flight[other][1] <= now)
            ]
            wait = max(0.0, confirm_wait(others, now=now, budget=budget, tokens=tokens))
        start = now + wait
        self.insert(slot_id, start + allowance, tokens, in_flight=True, start=start)
        if held is not None:
            # Keep the original give-up deadline: a slot cannot be held forever.
            self.in_flight[slot_id] = (held[0], start)
        return wait

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
        ids = self.ids
        last = len(ids) - 1
        if sent and last >= self.head and ids[last] == slot_id:
            ends = self.ends
            if last == self.head or ends[last - 1] <= end:
                # The usual case: the newest slot answered and still ends last. Update
                # it where it stands (the same result as the remove and insert below).
                self.in_flight.pop(slot_id, None)
                self.flight_at.pop(slot_id, None)
                token_list = self.tokens
                old = token_list[last]
                ends[last] = end
                token_list[last] = tokens
                self.total_tokens += tokens - old
                self.days.add(day, 0, tokens - old)
                return
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
