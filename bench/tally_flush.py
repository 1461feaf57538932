"""Writing tallied attempts: one store operation per batch against two per attempt.

    python -m bench tally_flush

While no limit is known (`tier="auto"` before a 429), the Guard sends without a
permit and `QuotaLimiter.tally`s each answered attempt; the limiter writes them in
batches of 32 through `QuotaStore.record_answered`. This times, per attempt and per
store, in one run: the batched write, and the same slots written the way a single
tally is (an `acquire` with no limits, then a `settle`), into a ledger whose window
holds ~1,200 answered slots (one every 50 ms of a FakeClock). Best of three rounds
of 3,200 attempts; the Redis row is next to a PING on the same connection.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

from bench.quota_acquire import _start_redis
from gemini_guard.clock import FakeClock
from gemini_guard.quota import QuotaKey, QuotaStore, open_store
from gemini_guard.quota.ledger import NO_LIMITS, Granted
from gemini_guard.quota.stores.base import Reservation

_BATCH = 32
_STEP = 0.05  # clock seconds between attempts: 1,200 in a 60 s window
_KEY = QuotaKey("bench", "gemini-2.5-flash")


class _Slots:
    """Answered slots, one every `_STEP` clock seconds, with unique ids."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._count = 0

    def take(self, n: int) -> list[Reservation]:
        slots = []
        for _ in range(n):
            self._clock.advance(_STEP)
            now = self._clock.time()
            self._count += 1
            slots.append(Reservation(_KEY, f"s{self._count:x}", now, now, 10, 0))
        return slots


def _one_by_one(store: QuotaStore, slots: list[Reservation]) -> None:
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
            ticket = slot._replace(day=result.day)
            store.settle(ticket, sent=True, end=slot.end, tokens=slot.tokens)


def _per_attempt_us(url: str, *, batched: bool, rounds: int = 3, n: int = 3200) -> float:
    store = open_store(url)
    slots = _Slots(FakeClock())
    try:
        for _ in range(1600 // _BATCH):  # fill the window first
            store.record_answered(slots.take(_BATCH))
        best = float("inf")
        for _ in range(rounds):
            batches = [slots.take(_BATCH) for _ in range(n // _BATCH)]
            started = time.perf_counter()
            for batch in batches:
                if batched:
                    store.record_answered(batch)
                else:
                    _one_by_one(store, batch)
            best = min(best, (time.perf_counter() - started) / n * 1e6)
        return best
    finally:
        store.close()


def _ping_us(url: str, n: int = 3000) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            client.ping()
        started = time.perf_counter()
        for _ in range(n):
            client.ping()
        return (time.perf_counter() - started) / n * 1e6
    finally:
        client.close()


def main(argv: list[str]) -> None:
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        urls = [("memory", "memory://"), ("sqlite", f"sqlite:///{workdir / 'tally.db'}")]
        started = _start_redis(workdir)
        if started is None:
            print("redis-server not found: the Redis row is skipped")
        else:
            urls.append(("redis", f"redis://127.0.0.1:{started[1]}/0"))
        try:
            print(f"| store | acquire + settle per attempt, µs | batches of {_BATCH}, µs | ratio |")
            print("|---|---|---|---|")
            for name, url in urls:
                # The two writers get fresh files/databases, so neither reads the other's.
                if name == "sqlite":
                    one = _per_attempt_us(f"sqlite:///{workdir / 'one.db'}", batched=False)
                    batch = _per_attempt_us(f"sqlite:///{workdir / 'batch.db'}", batched=True)
                elif name == "redis":
                    one = _per_attempt_us(url.replace("/0", "/1"), batched=False)
                    batch = _per_attempt_us(url.replace("/0", "/2"), batched=True)
                else:
                    one = _per_attempt_us(url, batched=False)
                    batch = _per_attempt_us(url, batched=True)
                print(f"| {name} | {one:.1f} | {batch:.1f} | {one / batch:.1f}x |")
            if started is not None:
                print(f"Redis PING on the same host: {_ping_us(urls[-1][1]):.1f} µs")
        finally:
            if started is not None:
                started[0].terminate()
                started[0].wait()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
