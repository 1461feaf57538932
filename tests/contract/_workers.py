"""Code run in child processes by the contract tests (importable under `spawn`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemini_guard.clock import FakeClock
from gemini_guard.quota import QuotaLimiter


def reserve_many(url: str, start: float, count: int, rpm: int) -> list[float]:
    """Book `count` slots at the fixed instant `start`; return their start times."""
    gate = QuotaLimiter(
        store=url,
        clock=FakeClock(start=start),
        tier="free",
        limits={"gemini-2.5-flash": {"rpm": rpm}},
        latency_allowance=0.0,
    )
    try:
        starts = []
        for _ in range(count):
            permit = gate.reserve(project="shared", model="gemini-2.5-flash", tokens=1)
            starts.append(permit.ticket.start)  # type: ignore[attr-defined]
        return starts
    finally:
        gate.close()


def open_new_files(
    kinds: list[str], directory: str, rounds: int, barrier: Any, results: Any
) -> None:
    """For each SQLite store of `kinds`, `rounds` times: once all workers are at the
    barrier, open the store on a new file (`directory/<kind>-<round>.db`) and close it.
    Put the errors seen on `results`."""
    errors: list[str] = []
    for kind in kinds:
        for n in range(rounds):
            barrier.wait()
            path = Path(directory) / f"{kind}-{n}.db"
            try:
                _SQLITE_STORES[kind](path).close()
            except Exception as exc:  # reported to the test, which names it
                errors.append(f"{kind} round {n}: {exc!r}")
    results.put(errors)


def _quota(path: Path) -> Any:
    from gemini_guard.quota.stores.sqlite import SQLiteStore

    return SQLiteStore(path)


def _levels(path: Path) -> Any:
    from gemini_guard.quota.shared_levels import SQLiteLevelStore

    return SQLiteLevelStore(path)


def _breakers(path: Path) -> Any:
    from gemini_guard.policies.breaker_stores import SQLiteBreakerStore

    return SQLiteBreakerStore(path)


def _cache(path: Path) -> Any:
    from gemini_guard.cache.stores.sqlite import SQLiteCacheStore

    return SQLiteCacheStore(path)


_SQLITE_STORES: dict[str, Callable[[Path], Any]] = {
    "quota": _quota,
    "levels": _levels,
    "breakers": _breakers,
    "cache": _cache,
}
