"""What every quota store offers: book a slot atomically, settle it, report usage.

A store keeps the ledger of each (project, model) — the slots of the sliding
window and the per-day counts — and applies `ledger`'s rules to it in one atomic
step: a lock (memory), a transaction (SQLite) or a Lua script (Redis).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gemini_guard.quota.ledger import Budget, Granted, Refused

__all__ = ["KeyUsage", "QuotaKey", "QuotaStore", "Reservation"]


# QuotaKey and Reservation are immutable NamedTuples, not frozen dataclasses: both
# are hashed or built on every acquire, and tuples do that in C, several times faster.


class QuotaKey(NamedTuple):
    """One quota ledger: a model's limits within one project (shared by its keys)."""

    project: str
    model: str


class Reservation(NamedTuple):
    """A booked slot, as the store needs it back at confirm and settle time.

    It is also the limiter's handle on a permit (`Permit.ticket`).
    """

    key: QuotaKey
    slot_id: str
    start: float  # wall seconds the request may be sent
    end: float  # the end the slot was booked with (start + latency allowance)
    tokens: int
    day: int  # Pacific day ordinal it was counted in
    origin: str = "primary"  # which backend booked it ("primary" or "fallback")
    booked_at: float = 0.0  # the booking limiter's monotonic clock (tells old 429s apart)


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A ledger's state at `now`: what the window and the day hold."""

    key: QuotaKey
    requests: int  # slots sharing a window with a request sent now (in flight included)
    tokens: int
    ahead: int  # slots still in flight or booked to start later (end after now)
    next_free: float | None  # wall time the oldest of those slots leaves the window
    day_requests: int
    day_tokens: int
    day_spent: bool  # the server said the day's quota is spent


class QuotaStore(Protocol):
    """A ledger store. Every method is atomic; driver failures raise StoreError."""

    @property
    def url(self) -> str:
        """Where the state lives, without credentials (for messages and events)."""
        ...

    def acquire(
        self,
        key: QuotaKey,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused:
        """Book the earliest slot that fits (see `ledger.SlotBook.book`)."""
        ...

    async def aacquire(
        self,
        key: QuotaKey,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused: ...

    def confirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        """The slot is about to be sent at `now`: seconds it must still wait (0.0: go).

        See `ledger.SlotBook.confirm`: the booking rule checked again, atomically,
        against the slots already sent or due.
        """
        ...

    async def aconfirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float: ...

    def settle(self, reservation: Reservation, *, sent: bool, end: float, tokens: int) -> None:
        """Release the slot (`sent=False`) or record its true end and tokens."""
        ...

    async def asettle(
        self, reservation: Reservation, *, sent: bool, end: float, tokens: int
    ) -> None: ...

    def record_answered(self, slots: Sequence[Reservation]) -> None:
        """Write slots sent without a permit and already answered, in one step.

        Each slot is what `acquire` with no limits and no allowance at `slot.start`,
        then `settle(sent=True, end=slot.end, tokens=slot.tokens)`, would leave: it
        ends at its `end` with its `tokens` and is counted in the Pacific day it
        would be booked in (`slot.day` is not read). A slot whose day is marked
        spent is skipped, as `acquire` would refuse it. Slots may name several keys.
        """
        ...

    async def arecord_answered(self, slots: Sequence[Reservation]) -> None: ...

    def mark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        """The server says the Pacific day `day` is spent for this key."""
        ...

    async def amark_day_spent(self, key: QuotaKey, *, day: int) -> None: ...

    def usage(self, key: QuotaKey, *, now: float, period: float = 60.0) -> KeyUsage:
        """What the ledger of `key` holds at `now`."""
        ...

    def ledgers(self) -> list[QuotaKey]:
        """Every (project, model) with a ledger, sorted."""
        ...

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...

    async def aclose(self) -> None:
        """`close`, also closing the connections asyncio callers opened on this loop."""
        ...


def usage_of_book(
    key: QuotaKey,
    ends: Sequence[float],
    tokens_of: list[int],
    day_counts: list[int] | None,
    *,
    now: float,
    period: float,
) -> KeyUsage:
    """KeyUsage from a ledger's slots (ascending ends) and today's counts.

    Found by bisection, not by a scan of every slot: a pool asks this of each of its
    projects, and a tier-3 window holds tens of thousands of slots."""
    if len(tokens_of) != len(ends):
        raise ValueError("usage_of_book: ends and tokens_of differ in length")
    first = bisect_right(ends, now - period)
    # bisect works on `now - period`; float rounding may differ from the rule
    # `end + period > now` by one slot either way.
    while first and ends[first - 1] + period > now:
        first -= 1
    while first < len(ends) and ends[first] + period <= now:
        first += 1
    requests, used, spent = day_counts if day_counts is not None else [0, 0, 0]
    return KeyUsage(
        key=key,
        requests=len(ends) - first,
        tokens=sum(tokens_of[first:]),
        ahead=len(ends) - max(first, bisect_right(ends, now)),
        next_free=(ends[first] + period) if first < len(ends) else None,
        day_requests=requests,
        day_tokens=used,
        day_spent=bool(spent),
    )
