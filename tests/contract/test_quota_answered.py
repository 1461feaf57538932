"""`record_answered` leaves what acquire (no limits) then settle leave, slot for slot.

The limiter writes the attempts it tallied (sent without a permit while no limit is
known) in batches through `record_answered`; each batch must leave a store exactly
as booking and settling its slots one by one would: the same window, the same day
counts, the same answer to the next acquire that has a real limit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis

from gemini_guard.pacific import next_reset
from gemini_guard.quota import QuotaKey, QuotaStore
from gemini_guard.quota.ledger import NO_LIMITS, Budget, Granted, day_index
from gemini_guard.quota.stores.base import Reservation
from gemini_guard.quota.stores.memory import MemoryStore
from gemini_guard.quota.stores.redis import RedisStore
from gemini_guard.quota.stores.sqlite import SQLiteStore
from tests.support.redis_server import RedisServer

MODEL = "gemini-2.5-flash"
# A Pacific midnight: the batch crosses it, so its slots count in two days.
MIDNIGHT = next_reset(1_750_000_000.0)


def _prepare(store: QuotaStore, project: str, *, in_flight: bool) -> None:
    """What the ledgers hold before the batch: answered slots, a queued plan, a spent day."""
    a, b = QuotaKey(project, MODEL), QuotaKey(f"{project}-b", MODEL)
    for key in (a, b):
        for index in range(2):  # one per minute: the second is planned a minute ahead
            result = store.acquire(
                key,
                slot_id=f"{project}-pre{index}",
                budget=Budget(requests=1),
                tokens=40,
                now=MIDNIGHT - 200.0,
                allowance=0.0,
                deadline=None,
            )
            assert isinstance(result, Granted)
            ticket = Reservation(key, result.slot_id, result.start, result.start, 40, result.day)
            store.settle(ticket, sent=True, end=result.start + 1.0, tokens=40)
    if in_flight:
        # Unanswered and due before the batch's later slots: each holds it late.
        store.acquire(
            a,
            slot_id=f"{project}-flying",
            budget=Budget(requests=10),
            tokens=7,
            now=MIDNIGHT - 130.0,
            allowance=2.0,
            deadline=None,
        )
    store.mark_day_spent(a, day=day_index(MIDNIGHT)[0])  # a's next day is spent


def _batch(project: str) -> list[Reservation]:
    a, b = QuotaKey(project, MODEL), QuotaKey(f"{project}-b", MODEL)

    def slot(key: QuotaKey, name: str, at: float, tokens: int, took: float = 0.0) -> Reservation:
        return Reservation(key, f"{project}-{name}", at, at + took, tokens, 0)

    return [
        slot(a, "early", MIDNIGHT - 150.0, 11),  # before the ledger's last start: FIFO
        slot(b, "early", MIDNIGHT - 150.0, 12),
        slot(b, "old", MIDNIGHT - 80.0, 13),  # the batch's own later slots trim it
        slot(a, "late", MIDNIGHT - 20.0, 14, took=0.5),
        slot(b, "late", MIDNIGHT - 15.0, 15),
        slot(a, "spent", MIDNIGHT + 5.0, 16),  # a day marked spent: skipped
        slot(b, "next", MIDNIGHT + 6.0, 17),  # b's next day: its first booking
        slot(a, "spent2", MIDNIGHT + 7.0, 18),
    ]


def _by_pair(store: QuotaStore, slots: list[Reservation]) -> None:
    """The limiter's former way: acquire with no limits, then settle at the end."""
    for slot in slots:
        result = store.acquire(
            slot.key,
            slot_id=slot.slot_id,
            budget=NO_LIMITS,
            tokens=slot.tokens,
            now=slot.start,
            allowance=0.0,
            deadline=None,
        )
        if isinstance(result, Granted):
            ticket = slot._replace(day=result.day, origin=result.origin)
            store.settle(ticket, sent=True, end=slot.end, tokens=slot.tokens)


def _seen(store: QuotaStore, project: str, *, before: bool = True) -> list[object]:
    """Every ledger's usage around the batch, then the next acquire with real limits.

    `before=False` leaves out the usage read before the batch's last slot: the day
    counts it reads are those of a day the memory store forgets at the first booking
    attempt in the next one, and the others at the next one's first booking.
    """
    seen: list[object] = []
    keys = (QuotaKey(project, MODEL), QuotaKey(f"{project}-b", MODEL))
    times = (MIDNIGHT + 10.0, MIDNIGHT + 50.0, MIDNIGHT + 130.0)
    for key in keys:
        for at in (MIDNIGHT - 10.0, *times) if before else times:
            usage = store.usage(key, now=at)
            seen.append(
                (
                    usage.requests,
                    usage.tokens,
                    usage.ahead,
                    None if usage.next_free is None else round(usage.next_free - MIDNIGHT, 6),
                    usage.day_requests,
                    usage.day_tokens,
                    usage.day_spent,
                )
            )
    for key in keys:
        for index, budget in enumerate((Budget(requests=3), Budget(tokens=40), Budget(requests=2))):
            result = store.acquire(
                key,
                slot_id=f"{project}-after{index}",
                budget=budget,
                tokens=30,
                now=MIDNIGHT + 10.0,
                allowance=1.0,
                deadline=None,
            )
            seen.append(
                (round(result.start - MIDNIGHT, 6), result.day)
                if isinstance(result, Granted)
                else (result.why, result.detail)
            )
    return seen


@pytest.mark.parametrize("in_flight", [False, True], ids=["quiet", "in-flight"])
async def test_a_batch_leaves_what_acquire_and_settle_leave(
    store: QuotaStore, in_flight: bool
) -> None:
    reference = MemoryStore()
    for project in ("pair", "batch", "abatch"):
        _prepare(store, project, in_flight=in_flight)
    _prepare(reference, "pair", in_flight=in_flight)
    _by_pair(store, _batch("pair"))
    _by_pair(reference, _batch("pair"))
    store.record_answered(_batch("batch"))
    try:
        await store.arecord_answered(_batch("abatch"))
        expected = _seen(store, "pair")
        assert _seen(store, "batch") == expected
        assert _seen(store, "abatch") == expected
        assert _seen(reference, "pair", before=False) == [
            seen for index, seen in enumerate(expected) if index not in (0, 4)
        ]
        # (the spent day's slots were skipped: a's next day holds none of them)
        assert store.usage(QuotaKey("batch", MODEL), now=MIDNIGHT + 1.0).day_requests == 0
    finally:
        await store.aclose()  # (closes the asyncio connections this loop opened)


def test_an_empty_batch_writes_nothing(store: QuotaStore) -> None:
    store.record_answered([])
    assert store.ledgers() == []


def _rows(db: sqlite3.Connection, sql: str, project: str) -> list[tuple[object, ...]]:
    """The rows of `project`'s two ledgers, the project name and slot ids made alike."""
    rows = db.execute(sql, (project, f"{project}-b")).fetchall()
    return sorted(
        tuple(value.replace(project, "P", 1) if isinstance(value, str) else value for value in row)
        for row in rows
    )


@pytest.mark.parametrize("in_flight", [False, True], ids=["quiet", "in-flight"])
def test_sqlite_rows_and_kept_counts_match_the_pair(tmp_path: Path, in_flight: bool) -> None:
    """The rows a batch leaves are the pair's, and each ledger's kept counts are exact."""
    path = tmp_path / "quota.db"
    store = SQLiteStore(path)
    try:
        for project in ("pair", "batch"):
            _prepare(store, project, in_flight=in_flight)
        _by_pair(store, _batch("pair"))
        store.record_answered(_batch("batch"))
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        for sql in (
            "SELECT project, model, slot_id, end_at, tokens, hold_until, start_at "
            "FROM quota_slots WHERE project IN (?, ?)",
            "SELECT project, model, last_start, slot_count, slot_tokens "
            "FROM quota_ledgers WHERE project IN (?, ?)",
            "SELECT project, model, day, requests, tokens, spent "
            "FROM quota_days WHERE project IN (?, ?)",
        ):
            assert _rows(db, sql, "batch") == _rows(db, sql, "pair")
        kept = db.execute(
            "SELECT l.project, l.slot_count, l.slot_tokens, COUNT(s.slot_id), "
            "COALESCE(SUM(s.tokens), 0) FROM quota_ledgers AS l LEFT JOIN quota_slots AS s "
            "ON s.project = l.project AND s.model = l.model GROUP BY l.project, l.model"
        ).fetchall()
        assert len(kept) == 4
        for project, count, tokens, rows, row_tokens in kept:
            assert (count, tokens) == (rows, row_tokens), project
    finally:
        db.close()


def _redis_state(client: redis.Redis, project: str) -> list[object]:
    """Both keys of `project`'s two ledgers: slots with scores, meta fields, TTLs (s)."""
    state: list[object] = []
    for name in (project, f"{project}-b"):
        tag = f"gg:{{{name}:{MODEL}}}"
        alike = project.encode()
        members: Any = client.zrange(f"{tag}:slots", 0, -1, withscores=True)
        state.append([(member.replace(alike, b"P", 1), score) for member, score in members])
        meta: Any = client.hgetall(f"{tag}:meta")
        state.append(
            sorted((field.replace(alike, b"P", 1), value) for field, value in meta.items())
        )
        state.append([round(client.pttl(f"{tag}:{suffix}") / 1000) for suffix in ("slots", "meta")])
    return state


@pytest.mark.redis
@pytest.mark.parametrize("in_flight", [False, True], ids=["quiet", "in-flight"])
def test_redis_keys_match_the_pair(redis_server: RedisServer, in_flight: bool) -> None:
    """What answered.lua leaves in both keys is what acquire.lua and settle.lua leave."""
    store = RedisStore(redis_server.url, on_outage="fail")
    client = redis.Redis.from_url(redis_server.url)
    try:
        for project in ("pair", "batch"):
            _prepare(store, project, in_flight=in_flight)
        _by_pair(store, _batch("pair"))
        store.record_answered(_batch("batch"))
        assert _redis_state(client, "batch") == _redis_state(client, "pair")
    finally:
        client.close()
        store.close()
