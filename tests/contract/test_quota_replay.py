"""Every store answers a long random run of reserve, confirm and settle as memory does.

The contract tests pin one rule each; this replays many rules mixed (late answers,
releases, slots held past their allowance and given up, queued plans confirmed
early or late, token corrections, a wait bound) against each store and against a
reference `MemoryStore`, and compares every answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from gemini_guard.clock import FakeClock
from gemini_guard.errors import DailyQuotaExhausted, QuotaWait
from gemini_guard.quota import QuotaLimiter, QuotaStore, open_store
from gemini_guard.quota.stores.memory import MemoryStore
from gemini_guard.quota_gate import Permit
from tests.support.redis_server import RedisServer

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
]
# Pauses past MAX_FLIGHT: unanswered slots are given up, then confirmed anyway.
# (SQLite answers some of these differently: it drops a given-up slot that has left
# the window before confirming it, where memory and Redis count it again.)
LONG_PAUSES = (0.5, 3.0, 17.0, 45.0, 61.0, 700.0)
LONG_CASES = [
    Case(1, 0.0, {"rpm": 3}, pauses=LONG_PAUSES),
    Case(2, 2.0, {"rpm": 4, "tpm": 1000}, pauses=LONG_PAUSES),
    Case(3, None, {"rpm": 3, "tpm": 900, "rpd": 60}, pauses=LONG_PAUSES),
    Case(4, 1.5, {"rpm": 2, "tpm": 700}, max_wait=90.0, pauses=LONG_PAUSES),
    Case(5, None, {"rpm": 5}, pauses=LONG_PAUSES),
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


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"seed{case.seed}")
def test_a_random_run_is_answered_as_memory_answers_it(store: QuotaStore, case: Case) -> None:
    _same(_replay(MemoryStore(), case), _replay(store, case))


@pytest.mark.redis
@pytest.mark.parametrize("case", LONG_CASES, ids=lambda case: f"seed{case.seed}")
def test_redis_answers_long_pauses_as_memory(redis_server: RedisServer, case: Case) -> None:
    store = open_store(f"{redis_server.url}?on_outage=fail")
    try:
        _same(_replay(MemoryStore(), case), _replay(store, case))
    finally:
        store.close()
