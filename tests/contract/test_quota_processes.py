"""Atomicity across processes: SQLite transactions and the Redis script never oversubscribe."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from tests.contract._workers import reserve_many
from tests.support.redis_server import RedisServer


def _run(url: str) -> list[float]:
    start = 1_767_225_600.0
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(reserve_many, [(url, start, 30, 20)] * 4)
    return [s - start for starts in results for s in starts]


def _assert_exact(offsets: list[float]) -> None:
    # 120 slots at 20 per minute, booked by 4 processes racing at one instant.
    assert Counter(round(o) for o in offsets) == {60 * m: 20 for m in range(6)}
    assert all(abs(o - round(o)) < 1e-6 for o in offsets)


def test_sqlite_processes_never_oversubscribe(tmp_path: Path) -> None:
    _assert_exact(_run(f"sqlite:///{tmp_path / 'shared.db'}"))


@pytest.mark.redis
def test_redis_processes_never_oversubscribe(redis_server: RedisServer) -> None:
    _assert_exact(_run(redis_server.url))
