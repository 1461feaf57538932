"""Code run in child processes by the contract tests (importable under `spawn`)."""

from __future__ import annotations

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
