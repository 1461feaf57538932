"""Four processes share one project's quota through a store, against the emulator.

The emulator enforces the free tier (gemini-2.5-flash-lite: 15 requests per sliding
minute) on a ScaledClock(60): a minute passes in a second, so 1 ms of latency is
60 ms of quota time. Every process is given the same clock epoch. Paced by the
shared ledger, and confirming each permit just before sending, no request may be
refused, and the quota must be used fully.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.clock import ScaledClock
from gemini_guard.emulator import serve
from tests.integration.quota import _worker
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

FACTOR = 60.0
MODEL = "gemini-2.5-flash-lite"
RPM = 15
MINUTES = 5
WORKERS = 4
THREADS = 2  # request loops per process, so a slow answer does not idle the quota


def _run_shared(
    store: str, *, rpm: int | None = None
) -> tuple[list[dict[str, int]], dict[str, Any]]:
    epoch = time.time()  # the test's own start: the scaled clocks' common origin
    clock = ScaledClock(FACTOR, epoch=epoch)
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    ready = context.Barrier(WORKERS + 1)
    begin_at = context.Value("d", 0.0)
    with serve("free-tier", clock=clock) as server:
        options = {
            "store": store,
            "base_url": server.base_url,
            "epoch": epoch,
            "factor": FACTOR,
            "minutes": MINUTES,
            "model": MODEL,
            "threads": THREADS,
            "rpm": rpm,
        }
        workers = [
            context.Process(target=_worker.main, args=(results, ready, begin_at), kwargs=options)
            for _ in range(WORKERS)
        ]
        for worker in workers:
            worker.start()
        try:
            ready.wait(timeout=60)  # every process is up
            begin_at.value = clock.time() + 0.1 * FACTOR  # 0.1 s from now, for all
            ready.wait(timeout=60)
            counts = [results.get(timeout=60) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
        stats = server.emulator.stats()
    return counts, stats


def _check(counts: list[dict[str, int]], stats: dict[str, Any]) -> None:
    ok = sum(c["ok"] for c in counts)
    assert sum(c["rate_limited"] for c in counts) == 0, counts
    assert sum(c["other"] for c in counts) == 0, counts
    assert stats["totals"]["rejected"] == {}
    # The most a sliding window allows in MINUTES minutes: RPM at each minute mark.
    most = RPM * MINUTES
    assert ok >= math.ceil(0.95 * most), f"{ok} of {most} used: {counts}"
    assert ok <= most
    assert all(c["ok"] > 0 for c in counts)  # every process got a share


def test_four_processes_share_a_project_through_sqlite(tmp_path: Path) -> None:
    _check(*_run_shared(f"sqlite:///{tmp_path / 'quota.db'}"))


@pytest.mark.redis
def test_four_processes_share_a_project_through_redis(redis_server: RedisServer) -> None:
    _check(*_run_shared(redis_server.url))


def _check_learned_once(counts: list[dict[str, int]]) -> None:
    # Configured for twice what the server enforces: the first minute overfills and
    # draws 429s stating the real limit (quotaValue 15). One process writes the
    # shared level, the others adopt it: one "server enforces" event in all, and no
    # 429 after the first minute, in any process.
    assert sum(c["learned"] for c in counts) == 1, counts
    assert max(c["learned_rpm"] for c in counts) == RPM, counts
    assert sum(c["rate_limited"] for c in counts) > 0, counts  # there was a wall
    assert max(c["last_429_at"] for c in counts) < 60, counts
    assert sum(c["other"] for c in counts) == 0, counts
    ok = sum(c["ok"] for c in counts)
    assert ok >= math.ceil(0.95 * RPM * MINUTES), counts  # paced at the learned limit


def test_four_processes_learn_a_lower_limit_once_through_sqlite(tmp_path: Path) -> None:
    counts, _ = _run_shared(f"sqlite:///{tmp_path / 'quota.db'}", rpm=2 * RPM)
    _check_learned_once(counts)


@pytest.mark.redis
def test_four_processes_learn_a_lower_limit_once_through_redis(redis_server: RedisServer) -> None:
    counts, _ = _run_shared(redis_server.url, rpm=2 * RPM)
    _check_learned_once(counts)
