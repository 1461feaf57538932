"""Every store answers a long random run of reserve, confirm and settle as memory does.

The contract tests pin one rule each; this replays many rules mixed (late answers,
releases, slots held past their allowance and given up, queued plans confirmed
early or late, token corrections, a wait bound) against each store and against a
reference `MemoryStore`, and compares every answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from gemini_guard.call import Permit
from gemini_guard.clock import FakeClock
from gemini_guard.errors import DailyQuotaExhausted, QuotaWait
from gemini_guard.quota import QuotaLimiter, QuotaStore
from gemini_guard.quota.stores.memory import MemoryStore
from gemini_guard.quota.stores.sqlite import SQLiteStore

MODEL = "gemini-2.5-flash"
PROJECT = "proj-r"


@dataclass(frozen=True)
class Case:
    seed: int
    allowance: float | None  # None: learned from the answers
    limits: dict[str, int]
    max_wait: float | None = None
    pauses: tuple[float, ...] = (0.5, 3.0, 17.0, 45.0, 61.0)  # how far the clock jumps


CASES = [
    Case(1, 0.0, {"rpm": 3}),
    Case(2, 2.0, {"rpm": 4, "tpm": 1000}),
    Case(3, None, {"rpm": 3, "tpm": 900, "rpd": 60}),
    Case(4, 1.5, {"rpm": 2, "tpm": 700}, max_wait=90.0),
    # The learned allowance grows past MAX_FLIGHT: a slot confirmed far ahead is past
    # its give-up deadline before it starts, and must stay a plan until it is late.
    Case(5, None, {"rpm": 5}),
]
# Pauses past MAX_FLIGHT: unanswered slots are given up, then confirmed anyway.
LONG_PAUSES = (0.5, 3.0, 17.0, 45.0, 61.0, 700.0)
LONG_CASES = [
    Case(1, 0.0, {"rpm": 3}, pauses=LONG_PAUSES),
    Case(2, 2.0, {"rpm": 4, "tpm": 1000}, pauses=LONG_PAUSES),
    Case(3, None, {"rpm": 3, "tpm": 900, "rpd": 60}, pauses=LONG_PAUSES),
    Case(4, 1.5, {"rpm": 2, "tpm": 700}, max_wait=90.0, pauses=LONG_PAUSES),
    Case(5, None, {"rpm": 5}, pauses=LONG_PAUSES),
    Case(10, None, {"rpm": 2, "tpm": 500}, pauses=LONG_PAUSES),
    Case(12, 0.0, {"rpm": 3}, pauses=LONG_PAUSES),
    Case(14, 2.0, {"rpm": 4, "tpm": 1000}, max_wait=90.0, pauses=LONG_PAUSES),
    # A learned allowance and long pauses: a slot that confirm planned past its
    # deadline once ended earlier; it is given up only when its current end passes.
    Case(9, None, {"rpm": 2, "tpm": 500}, pauses=LONG_PAUSES),
    Case(14, None, {"rpm": 5}, pauses=LONG_PAUSES),
]
ALL_CASES = [
    *[pytest.param(case, id=f"seed{case.seed}") for case in CASES],
    *[pytest.param(case, id=f"seed{case.seed}-long") for case in LONG_CASES],
]


def _replay(
    store: QuotaStore, case: Case, steps: int = 160, with_usage: bool = False
) -> list[tuple[object, ...]]:
    rng = random.Random(case.seed)
    clock = FakeClock()
    t0 = clock.time()
    gate = QuotaLimiter(
        store=store,
        clock=clock,
        tier="free",
        limits={MODEL: dict(case.limits)},
        latency_allowance=case.allowance,
        max_wait=case.max_wait,
        adaptive=False,
    )
    pending: list[Permit] = []
    log: list[tuple[object, ...]] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.35 or not pending:
            tokens = rng.choice([0, 10, 120, 300])
            try:
                permit = gate.reserve(project=PROJECT, model=MODEL, tokens=tokens)
            except (QuotaWait, DailyQuotaExhausted) as exc:
                log.append(("refused", type(exc).__name__))
            else:
                pending.append(permit)
                start = permit.ticket.start  # type: ignore[attr-defined]
                log.append(("reserve", round(permit.wait, 6), round(start - t0, 6)))
        elif roll < 0.6:
            permit = rng.choice(pending)
            log.append(("confirm", round(gate.confirm(permit), 6)))
        elif roll < 0.85:
            permit = pending.pop(rng.randrange(len(pending)))
            sent = rng.random() < 0.85
            used = rng.choice([None, 5, 200])
            gate.settle(permit, sent=sent, input_tokens=used if sent else None)
            log.append(("settle", sent))
        else:
            clock.advance(rng.choice(case.pauses))
        if not with_usage:
            continue
        usage = gate.usage(PROJECT, MODEL)
        log.append(
            (
                "usage",
                usage.requests,
                usage.tokens,
                usage.ahead,
                None if usage.next_free is None else round(usage.next_free - t0, 6),
                usage.day_requests,
                usage.day_tokens,
            )
        )
    return log


def _same(expected: list[tuple[object, ...]], got: list[tuple[object, ...]]) -> None:
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"step {index}: {have} != {want} (memory)"


@pytest.mark.parametrize("case", ALL_CASES)
def test_a_random_run_is_answered_as_memory_answers_it(store: QuotaStore, case: Case) -> None:
    _same(_replay(MemoryStore(), case), _replay(store, case))


@pytest.mark.parametrize("case", ALL_CASES)
def test_sqlite_usage_follows_memory_step_by_step(tmp_path: Path, case: Case) -> None:
    """What `usage` reads after every step: rows the SQLite store keeps or deletes show."""
    store = SQLiteStore(tmp_path / "quota.db")
    try:
        _same(_replay(MemoryStore(), case, with_usage=True), _replay(store, case, with_usage=True))
    finally:
        store.close()
