"""An unanswered slot's end only ever moves later, on every store.

While a request is unanswered its slot ends at `start + allowance`, and no earlier
than the last time the ledger saw it still unanswered. `confirm` may move the end
later (a caller that sends late ends late); what the ledger did earlier must never
pull it back.
"""

from __future__ import annotations

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.quota import QuotaLimiter, QuotaStore

MODEL = "gemini-2.5-flash"
PROJECT = "proj-h"


def test_a_late_confirmed_slot_keeps_its_end_after_a_learned_allowance(
    store: QuotaStore,
) -> None:
    clock = FakeClock()
    gate = QuotaLimiter(
        store=store, clock=clock, tier="free", limits={MODEL: {"rpm": 1}}, adaptive=False
    )
    t0 = clock.time()
    first = gate.reserve(project=PROJECT, model=MODEL, tokens=0)
    assert gate.confirm(first) == 0.0
    clock.advance(4.0)
    gate.settle(first, sent=True)  # answered in 4 s: the allowance learned is 4 + 4 * 2
    second = gate.reserve(project=PROJECT, model=MODEL, tokens=0)
    assert second.ticket.start == pytest.approx(t0 + 64.0, abs=1e-6)  # type: ignore[attr-defined]
    assert second.ticket.end == pytest.approx(t0 + 76.0, abs=1e-6)  # type: ignore[attr-defined]
    clock.set_time(t0 + 70.0)  # its caller wakes 6 s late and sends now
    assert gate.confirm(second) == 0.0  # unanswered, it now ends at t0 + 70 + 12
    clock.set_time(t0 + 77.0)  # past the end it was booked with, before the new one
    third = gate.reserve(project=PROJECT, model=MODEL, tokens=0)
    # The second may be counted until t0 + 82: the third starts a window later.
    assert third.ticket.start == pytest.approx(t0 + 142.0, abs=1e-6)  # type: ignore[attr-defined]


def test_a_queued_slot_sent_late_keeps_its_later_end(store: QuotaStore) -> None:
    """With a fixed allowance too: the end it was booked with must not come back."""
    clock = FakeClock()
    gate = QuotaLimiter(
        store=store,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": 1}},
        latency_allowance=5.0,
        adaptive=False,
    )
    t0 = clock.time()
    first = gate.reserve(project=PROJECT, model=MODEL, tokens=0)
    assert gate.confirm(first) == 0.0  # ends at t0 + 5 while unanswered
    clock.set_time(t0 + 8.0)
    later = gate.reserve(project=PROJECT, model=MODEL, tokens=0)  # holds `first` to t0 + 8
    assert later.ticket.start == pytest.approx(t0 + 68.0, abs=1e-6)  # type: ignore[attr-defined]
    clock.set_time(t0 + 9.0)
    gate.settle(first, sent=True)  # answered at t0 + 9
    clock.set_time(t0 + 80.0)
    assert gate.confirm(later) == 0.0  # sent 12 s late: ends at t0 + 85
    clock.set_time(t0 + 81.0)  # past the end it was booked with (t0 + 73)
    nxt = gate.reserve(project=PROJECT, model=MODEL, tokens=0)
    assert nxt.ticket.start == pytest.approx(t0 + 145.0, abs=1e-6)  # type: ignore[attr-defined]
