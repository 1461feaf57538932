"""`memory://`: the ledger in this process's memory, for threads and asyncio tasks.

One lock guards every ledger; each operation holds it for a few microseconds and
never across I/O, so asyncio tasks may call it directly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gemini_guard.quota.ledger import NO_LIMITS, Budget, Granted, Refused, SlotBook, day_index
from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, Reservation, usage_of_book

__all__ = ["MemoryStore"]


class MemoryStore:
    """Ledgers in a dict, guarded by one lock."""

    def __init__(self) -> None:
        self._books: dict[QuotaKey, SlotBook] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return "memory://"

    def __repr__(self) -> str:
        return "MemoryStore()"

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
        with self._lock:
            book = self._books.get(key)
            if book is None:
                book = self._books[key] = SlotBook()
            return book.book(
                slot_id=slot_id,
                now=now,
                budget=budget,
                tokens=tokens,
                allowance=allowance,
                deadline=deadline,
            )

    def confirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        with self._lock:
            book = self._books.get(reservation.key)
            if book is None:
                return 0.0
            return book.confirm(
                slot_id=reservation.slot_id,
                end_hint=reservation.end,
                now=now,
                budget=budget,
                allowance=allowance,
            )

    async def aconfirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        return self.confirm(reservation, now=now, budget=budget, allowance=allowance)

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
    ) -> Granted | Refused:
        return self.acquire(
            key,
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )

    def settle(self, reservation: Reservation, *, sent: bool, end: float, tokens: int) -> None:
        with self._lock:
            book = self._books.get(reservation.key)
            if book is None:
                book = self._books[reservation.key] = SlotBook()
            book.settle(
                slot_id=reservation.slot_id,
                end_hint=reservation.end,
                day=reservation.day,
                sent=sent,
                end=end,
                tokens=tokens,
            )

    async def asettle(
        self, reservation: Reservation, *, sent: bool, end: float, tokens: int
    ) -> None:
        self.settle(reservation, sent=sent, end=end, tokens=tokens)

    def record_answered(self, slots: Sequence[Reservation]) -> None:
        # What booking with no limits and settling would do, under one lock.
        with self._lock:
            books = self._books
            period = NO_LIMITS.period
            for slot in slots:
                book = books.get(slot.key)
                if book is None:
                    book = books[slot.key] = SlotBook()
                book.record(start=slot.start, end=slot.end, tokens=slot.tokens, period=period)

    async def arecord_answered(self, slots: Sequence[Reservation]) -> None:
        self.record_answered(slots)

    def mark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        with self._lock:
            book = self._books.get(key)
            if book is None:
                book = self._books[key] = SlotBook()
            book.days.mark_spent(day)

    async def amark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        self.mark_day_spent(key, day=day)

    def usage(self, key: QuotaKey, *, now: float, period: float = 60.0) -> KeyUsage:
        with self._lock:
            book = self._books.get(key)
            if book is None:  # not `or`: a book with no slots is falsy, yet keeps its days
                book = SlotBook()
            today = day_index(now)[0]
            counts = book.days.days.get(today)
            return usage_of_book(
                key,
                book.ends,  # read under the lock: no copy needed
                book.tokens,
                list(counts) if counts is not None else None,
                now=now,
                period=period,
            )

    def ledgers(self) -> list[QuotaKey]:
        with self._lock:
            return sorted(self._books)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._books.clear()
