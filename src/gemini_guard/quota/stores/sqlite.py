"""`sqlite:///path`: the ledger in a SQLite file, shared by the processes of one host.

Each operation is one `BEGIN IMMEDIATE` transaction: it takes the database's write
lock before reading, so two processes can never both read the same window and both
book its last slot. WAL mode lets readers (the CLI) look while writers work, and
the busy timeout makes writers queue for the lock instead of failing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from gemini_guard.quota.ledger import (
    MAX_FLIGHT,
    NO_LIMITS,
    Budget,
    DayBook,
    Granted,
    Refused,
    SlotBook,
    day_index,
)
from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, Reservation, usage_of_book
from gemini_guard.stores.sqlite import SQLiteFile
from gemini_guard.stores.url import OnCorrupt, StoreUrl, sqlite_file_of

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_slots (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    slot_id TEXT NOT NULL,
    end_at REAL NOT NULL,
    tokens INTEGER NOT NULL,
    hold_until REAL NOT NULL,  -- unanswered: the slot ends no earlier than now, until then
    start_at REAL NOT NULL DEFAULT 0,  -- planned start (read by confirm)
    PRIMARY KEY (project, model, slot_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS quota_slots_by_end ON quota_slots (project, model, end_at);
-- Only unanswered slots (hold_until > 0): the per-acquire "hold late slots" update
-- looks at these few, not at the whole window.
CREATE INDEX IF NOT EXISTS quota_slots_in_flight ON quota_slots (project, model, end_at)
    WHERE hold_until > 0;
-- slot_count and slot_tokens: how many rows the ledger has in quota_slots and their
-- tokens, kept by every write, so an acquire reads them instead of counting the window.
CREATE TABLE IF NOT EXISTS quota_ledgers (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    last_start REAL NOT NULL,
    slot_count INTEGER NOT NULL,
    slot_tokens INTEGER NOT NULL,
    PRIMARY KEY (project, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_days (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    day INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    spent INTEGER NOT NULL,
    PRIMARY KEY (project, model, day)
) WITHOUT ROWID;
"""


# The last start of a ledger that has booked nothing yet (as `SlotBook.last_start`).
_NO_START = float("-inf")


def _migrate(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(quota_slots)")}
    if "start_at" not in columns:  # a file written before confirm existed
        db.execute("ALTER TABLE quota_slots ADD COLUMN start_at REAL NOT NULL DEFAULT 0")
    columns = {row[1] for row in db.execute("PRAGMA table_info(quota_ledgers)")}
    if "slot_count" not in columns:  # a file written before the counts were kept
        db.execute("ALTER TABLE quota_ledgers ADD COLUMN slot_count INTEGER NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE quota_ledgers ADD COLUMN slot_tokens INTEGER NOT NULL DEFAULT 0")
        # (WHERE true: an upsert's SELECT needs one, or ON reads as a join.)
        db.execute(
            "INSERT INTO quota_ledgers (project, model, last_start, slot_count, slot_tokens) "
            "SELECT project, model, ?, COUNT(*), SUM(tokens) FROM quota_slots WHERE true "
            "GROUP BY project, model ON CONFLICT (project, model) DO UPDATE SET "
            "slot_count = excluded.slot_count, slot_tokens = excluded.slot_tokens",
            (_NO_START,),
        )


class SQLiteStore:
    """Ledgers in one SQLite file; one connection per thread."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 10.0, on_corrupt: OnCorrupt = "fail"
    ) -> None:
        self._day_of = DayBook()  # caches the Pacific day's bounds (day_of)
        self._file = SQLiteFile(
            path,
            what="the SQLite store",
            schema=_SCHEMA,
            migrate=_migrate,
            busy_timeout=busy_timeout,
            on_corrupt=on_corrupt,
        )
        self._transaction = self._file.transaction

    @classmethod
    def from_url(cls, url: str | StoreUrl) -> SQLiteStore:
        """`sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite:///~/path`."""
        path, on_corrupt = sqlite_file_of(url)
        return cls(path, on_corrupt=on_corrupt)

    @staticmethod
    def from_url_path(url: str) -> Path:
        """The database file a sqlite:// URL names (nothing is opened or created)."""
        return sqlite_file_of(url)[0]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    @property
    def path(self) -> Path:
        return self._file.path

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # -- ledger ---------------------------------------------------------------------

    @staticmethod
    def _hold_late(db: sqlite3.Connection, key: QuotaKey, now: float) -> None:
        # As `SlotBook.hold_late`: an unanswered slot found late is given up once its
        # hold has passed (it ends as it stands; hold_until 0 says it is no longer in
        # flight, as for an answered one), else it ends no earlier than now. A slot
        # whose hold passed while it still ends ahead (a long wait, a large allowance)
        # stays in flight until it is found late. The partial index holds only the
        # unanswered rows, so this reads few.
        db.execute(
            "UPDATE quota_slots SET hold_until = 0 WHERE project = ? AND model = ? "
            "AND hold_until > 0 AND end_at < ? AND hold_until <= ?",
            (key.project, key.model, now, now),
        )
        db.execute(
            "UPDATE quota_slots SET end_at = ? WHERE project = ? AND model = ? "
            "AND hold_until > 0 AND end_at < ?",
            (now, key.project, key.model, now),
        )

    @staticmethod
    def _trim(db: sqlite3.Connection, key: QuotaKey, now: float, period: float) -> tuple[int, int]:
        """Delete the rows that left the window: (how many, their tokens)."""
        # As `SlotBook.drop_expired`, to the bit (SQLite adds doubles as Python does):
        # whether a slot is still there decides what a later confirm or settle of it
        # does, so a row may neither outlive the memory ledger's slot nor go before it.
        # The first bound lets the index find the rows; the second is the exact rule.
        where = "WHERE project = ? AND model = ? AND end_at <= ? AND end_at + ? <= ?"
        params = (key.project, key.model, now - period, period, now)
        gone, tokens = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM quota_slots {where}", params
        ).fetchone()
        if gone:
            db.execute(f"DELETE FROM quota_slots {where}", params)
        return gone, tokens

    @staticmethod
    def _count(db: sqlite3.Connection, key: QuotaKey, slots: int, tokens: int) -> None:
        """Add to the ledger's counts of its rows (creating the ledger if need be)."""
        db.execute(
            "INSERT INTO quota_ledgers (project, model, last_start, slot_count, slot_tokens) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, model) DO UPDATE SET "
            "slot_count = slot_count + excluded.slot_count, "
            "slot_tokens = slot_tokens + excluded.slot_tokens",
            (key.project, key.model, _NO_START, slots, tokens),
        )

    def _load(self, db: sqlite3.Connection, key: QuotaKey, now: float) -> SlotBook:
        # Nothing is trimmed here, as `SlotBook.confirm` drops nothing: a slot given
        # up and past the window is still booked until an acquire trims it, and
        # confirming it counts it again.
        book = SlotBook()
        self._hold_late(db, key, now)
        in_flight = book.in_flight
        for slot_id, end, tokens, hold_until, start_at in db.execute(
            "SELECT slot_id, end_at, tokens, hold_until, start_at FROM quota_slots "
            "WHERE project = ? AND model = ? ORDER BY end_at",
            (key.project, key.model),
        ):
            book.ends.append(end)
            book.ids.append(slot_id)
            book.tokens.append(tokens)
            book.total_tokens += tokens
            if hold_until > 0:
                in_flight[slot_id] = (hold_until, start_at)
                book.flight_at[slot_id] = end
        row = db.execute(
            "SELECT last_start FROM quota_ledgers WHERE project = ? AND model = ?",
            (key.project, key.model),
        ).fetchone()
        if row is not None:
            book.last_start = row[0]
        today = day_index(now)[0]
        for day, requests, tokens, spent in db.execute(
            "SELECT day, requests, tokens, spent FROM quota_days "
            "WHERE project = ? AND model = ? AND day >= ?",
            (key.project, key.model, today),
        ):
            book.days.days[day] = [requests, tokens, spent]
        return book

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
        with self._transaction() as db:
            return self._book(
                db,
                key,
                slot_id=slot_id,
                budget=budget,
                tokens=tokens,
                now=now,
                allowance=allowance,
                deadline=deadline,
            )

    def _book(
        self,
        db: sqlite3.Connection,
        key: QuotaKey,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused:
        """`acquire` within the caller's transaction."""
        # The rule of `ledger.SlotBook.book`, asked of the index instead of loading
        # the window: the ledger's kept counts, one ranked row for the request limit,
        # and only the oldest rows for the token limit, so the cost barely grows with
        # the limit.
        project, model = key
        period = budget.period
        self._hold_late(db, key, now)
        gone, gone_tokens = self._trim(db, key, now, period)
        row = db.execute(
            "SELECT last_start, slot_count, slot_tokens FROM quota_ledgers "
            "WHERE project = ? AND model = ?",
            (project, model),
        ).fetchone()
        if row is None:
            last, count, total = _NO_START, 0, 0
        else:
            last, count, total = row[0], row[1] - gone, row[2] - gone_tokens
        start = now if last < now else last
        requests = budget.requests
        if requests is not None and count >= max(requests, 1):
            # The row that must have left the window, ranked from whichever end
            # is nearer: the window's oldest, or the newest when many are queued.
            keep = max(requests, 1)
            rank = count - keep
            order, offset = ("", rank) if rank < keep else (" DESC", keep - 1)
            (oldest_end,) = db.execute(
                "SELECT end_at FROM quota_slots WHERE project = ? AND model = ? "
                f"ORDER BY end_at{order} LIMIT 1 OFFSET ?",
                (project, model, offset),
            ).fetchone()
            start = max(start, oldest_end + period)
        if budget.tokens is not None:
            room = max(budget.tokens, tokens) - tokens
            if total > room:
                remaining = total
                for end_at, slot_tokens in db.execute(
                    "SELECT end_at, tokens FROM quota_slots WHERE project = ? AND model = ? "
                    "ORDER BY end_at",
                    (project, model),
                ):
                    if remaining <= room:
                        break
                    start = max(start, end_at + period)
                    remaining -= slot_tokens
        day, day_end = self._day_of.day_of(start)
        today = self._day_of.day_of(now)[0]
        days = DayBook()
        for counted_day, day_requests, day_tokens, spent in db.execute(
            "SELECT day, requests, tokens, spent FROM quota_days "
            "WHERE project = ? AND model = ? AND day >= ?",
            (project, model, today),
        ):
            days.days[counted_day] = [day_requests, day_tokens, spent]
        refused = days.check(day, day_end, budget, tokens)
        if refused is None and deadline is not None and start > deadline:
            refused = Refused("wait", start)
        if refused is not None:
            if gone:
                self._count(db, key, -gone, -gone_tokens)
            return refused
        end = start + allowance
        db.execute(
            "INSERT INTO quota_slots "
            "(project, model, slot_id, end_at, tokens, hold_until, start_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (project, model, slot_id, end, tokens, end + MAX_FLIGHT, start),
        )
        db.execute(
            "INSERT OR REPLACE INTO quota_ledgers "
            "(project, model, last_start, slot_count, slot_tokens) VALUES (?, ?, ?, ?, ?)",
            (project, model, start, count + 1, total + tokens),
        )
        db.execute(
            "INSERT INTO quota_days (project, model, day, requests, tokens, spent) "
            "VALUES (?, ?, ?, 1, ?, 0) ON CONFLICT (project, model, day) "
            "DO UPDATE SET requests = requests + 1, tokens = tokens + excluded.tokens",
            (project, model, day, tokens),
        )
        if day not in days.days:
            # The day's first booking: yesterday's counts are no longer needed.
            db.execute(
                "DELETE FROM quota_days WHERE project = ? AND model = ? AND day < ?",
                (project, model, today),
            )
        return Granted(start, slot_id, day)

    def confirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        key = reservation.key
        slot_id = reservation.slot_id
        with self._transaction() as db:
            book = self._load(db, key, now)
            wait = book.confirm(
                slot_id=slot_id,
                end_hint=reservation.end,
                now=now,
                budget=budget,
                allowance=allowance,
            )
            held = book.in_flight.get(slot_id)
            if held is not None:  # still booked: store where it now ends
                end = book.ends[book.ids.index(slot_id)]
                db.execute(
                    "UPDATE quota_slots SET end_at = ?, hold_until = ?, start_at = ? "
                    "WHERE project = ? AND model = ? AND slot_id = ?",
                    (end, held[0], held[1], key.project, key.model, slot_id),
                )
            return wait

    async def aconfirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        return await asyncio.to_thread(
            self.confirm, reservation, now=now, budget=budget, allowance=allowance
        )

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
        # The write lock may be held by another process: wait for it off the loop.
        return await asyncio.to_thread(
            self.acquire,
            key,
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )

    def settle(self, reservation: Reservation, *, sent: bool, end: float, tokens: int) -> None:
        with self._transaction() as db:
            self._settle_row(db, reservation, sent=sent, end=end, tokens=tokens)

    def _settle_row(
        self,
        db: sqlite3.Connection,
        reservation: Reservation,
        *,
        sent: bool,
        end: float,
        tokens: int,
    ) -> None:
        """`settle` within the caller's transaction."""
        key = reservation.key
        pk = (key.project, key.model, reservation.slot_id)
        row = db.execute(
            "SELECT tokens FROM quota_slots WHERE project = ? AND model = ? AND slot_id = ?",
            pk,
        ).fetchone()
        old_tokens: int | None = None if row is None else row[0]
        if not sent:
            if old_tokens is not None:
                db.execute(
                    "DELETE FROM quota_slots WHERE project = ? AND model = ? AND slot_id = ?",
                    pk,
                )
                self._count(db, key, -1, -old_tokens)
                self._add_day(db, reservation, requests=-1, tokens=-old_tokens)
            return
        db.execute(
            "INSERT OR REPLACE INTO quota_slots "
            "(project, model, slot_id, end_at, tokens, hold_until, start_at) "
            "VALUES (?, ?, ?, ?, ?, 0, 0)",
            (*pk, end, tokens),
        )
        if old_tokens is None:
            # It had left the window (an answer slower than the whole window): it
            # is back at its true end; its day was counted at booking.
            self._count(db, key, 1, tokens)
        elif old_tokens != tokens:
            self._count(db, key, 0, tokens - old_tokens)
            self._add_day(db, reservation, requests=0, tokens=tokens - old_tokens)

    @staticmethod
    def _add_day(
        db: sqlite3.Connection, reservation: Reservation, *, requests: int, tokens: int
    ) -> None:
        db.execute(
            "UPDATE quota_days SET requests = MAX(requests + ?, 0), tokens = MAX(tokens + ?, 0) "
            "WHERE project = ? AND model = ? AND day = ?",
            (
                requests,
                tokens,
                reservation.key.project,
                reservation.key.model,
                reservation.day,
            ),
        )

    async def asettle(
        self, reservation: Reservation, *, sent: bool, end: float, tokens: int
    ) -> None:
        await asyncio.to_thread(self.settle, reservation, sent=sent, end=end, tokens=tokens)

    def record_answered(self, slots: Sequence[Reservation]) -> None:
        # One transaction for the batch (the commit is most of a write's cost); within
        # it each slot is booked and settled by the same code as the pair, so the
        # rule lives in one place.
        if not slots:
            return
        with self._transaction() as db:
            for slot in slots:
                result = self._book(
                    db,
                    slot.key,
                    slot_id=slot.slot_id,
                    budget=NO_LIMITS,
                    tokens=slot.tokens,
                    now=slot.start,
                    allowance=0.0,
                    deadline=None,
                )
                if isinstance(result, Granted):
                    self._settle_row(
                        db,
                        slot._replace(day=result.day),
                        sent=True,
                        end=slot.end,
                        tokens=slot.tokens,
                    )

    async def arecord_answered(self, slots: Sequence[Reservation]) -> None:
        await asyncio.to_thread(self.record_answered, slots)

    def mark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO quota_days (project, model, day, requests, tokens, spent) "
                "VALUES (?, ?, ?, 0, 0, 1) "
                "ON CONFLICT (project, model, day) DO UPDATE SET spent = 1",
                (key.project, key.model, day),
            )

    async def amark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        await asyncio.to_thread(self.mark_day_spent, key, day=day)

    def usage(self, key: QuotaKey, *, now: float, period: float = 60.0) -> KeyUsage:
        with self._transaction("DEFERRED") as db:
            rows = db.execute(
                "SELECT end_at, tokens FROM quota_slots "
                "WHERE project = ? AND model = ? ORDER BY end_at",
                (key.project, key.model),
            ).fetchall()
            day = db.execute(
                "SELECT requests, tokens, spent FROM quota_days "
                "WHERE project = ? AND model = ? AND day = ?",
                (key.project, key.model, day_index(now)[0]),
            ).fetchone()
        return usage_of_book(
            key,
            [row[0] for row in rows],
            [row[1] for row in rows],
            list(day) if day is not None else None,
            now=now,
            period=period,
        )

    def ledgers(self) -> list[QuotaKey]:
        with self._transaction("DEFERRED") as db:
            rows = db.execute(
                "SELECT project, model FROM quota_ledgers "
                "UNION SELECT project, model FROM quota_days"
            ).fetchall()
        return sorted(QuotaKey(project, model) for project, model in rows)
