"""With a project pool, each (project, model) has its own circuit breaker.

One project's failures (a broken key, a region, a project-level outage) open that
project's breaker for the model; the pool keeps serving the model from the others.
Only when every project's breaker refuses is the model skipped.
"""

from __future__ import annotations

import random

import pytest
from google.genai import types

from gemini_guard.call import AttemptPlan, Engine, Steps, run_async, run_sync
from gemini_guard.clock import FakeClock
from gemini_guard.errors import AttemptsExhausted, CallFailed, CircuitOpen
from gemini_guard.policies import BreakerPolicy, MemoryBreakerStore, RetryPolicy
from gemini_guard.quota.pool import ProjectPool
from gemini_guard.telemetry import BreakerStateChanged, Event, ModelSkipped, Telemetry
from tests.unit.guard._script import internal, ok

FLASH, LITE = "gemini-2.5-flash", "gemini-2.5-flash-lite"


class Rig:
    def __init__(self, broken: set[str]) -> None:
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.store = MemoryBreakerStore()
        self.pool = ProjectPool(
            [
                {"name": "a", "keys": ["AIzaSyPOOLKEYA-0123456789abcdef01"], "tier": "tier1"},
                {"name": "b", "keys": ["AIzaSyPOOLKEYB-0123456789abcdef01"], "tier": "tier1"},
            ],
            clock=self.clock,
        )
        self.engine = Engine(
            clock=self.clock,
            retry=RetryPolicy(jitter="none", server_delay_jitter=0.0),
            breaker=BreakerPolicy(failure_threshold=2, cooldown=30.0),
            breaker_store=self.store,
            telemetry=Telemetry([self.events.append]),
            quota=self.pool,
            project="*",
            rng=random.Random(7),
        )
        self.broken = broken
        self.sent: list[tuple[str | None, str]] = []

    def send(self, plan: AttemptPlan) -> types.GenerateContentResponse:
        self.sent.append((plan.project, plan.model))
        if plan.project in self.broken:
            raise internal()
        return ok(plan.model)

    async def asend(self, plan: AttemptPlan) -> types.GenerateContentResponse:
        return self.send(plan)

    def call(self, *chain: str) -> str | None:
        steps: Steps[types.GenerateContentResponse] = self.engine.steps(
            chain, tokens=5, input_tokens_of=lambda _: 5
        )
        _, info = run_sync(steps, clock=self.clock, quota=self.pool, send=self.send)
        return info.model

    async def acall(self, *chain: str) -> str | None:
        steps: Steps[types.GenerateContentResponse] = self.engine.steps(
            chain, tokens=5, input_tokens_of=lambda _: 5
        )
        _, info = await run_async(steps, clock=self.clock, quota=self.pool, send=self.asend)
        return info.model


def test_a_broken_project_opens_its_own_breaker_and_the_pool_serves_from_the_other() -> None:
    rig = Rig(broken={"a"})
    served = [rig.call(FLASH) for _ in range(8)]
    assert served == [FLASH] * 8  # never fell back: project b serves flash
    opened = [e for e in rig.events if isinstance(e, BreakerStateChanged) and e.new == "open"]
    assert [(e.project, e.model) for e in opened] == [("a", FLASH)]
    # a's breaker opened after its second failure; from then on nothing goes to a.
    sent_to_a = [i for i, (project, _) in enumerate(rig.sent) if project == "a"]
    assert len(sent_to_a) == 2
    assert all(project == "b" for project, _ in rig.sent[sent_to_a[-1] + 1 :])
    assert rig.store.load(f"b/{FLASH}") is not None  # b's own breaker recorded successes
    assert rig.store.load(f"*/{FLASH}") is None  # no pool-wide breaker any more


def test_every_project_broken_skips_the_model_and_falls_back() -> None:
    rig = Rig(broken={"a", "b"})
    failures: list[type[CallFailed]] = []
    for _ in range(3):
        with pytest.raises(CallFailed) as caught:
            rig.call(FLASH)
        failures.append(type(caught.value))
    # The first call tries both projects and runs out of retries; by then both
    # breakers are open, so the next calls send nothing and say so.
    assert failures == [AttemptsExhausted, CircuitOpen, CircuitOpen]
    assert len(rig.sent) == 4  # two failures per project, then nothing
    skipped = [e for e in rig.events if isinstance(e, ModelSkipped)]
    # The first call's last turn found both open too.
    assert [e.reason for e in skipped] == ["breaker_open"] * 3
    # `until`: when the first of the two breakers half-opens (30 s cooldown).
    until = skipped[-1].until
    assert until is not None
    assert rig.clock.time() < until <= rig.clock.time() + 30.0
    # Another model of the chain has breakers of its own and still serves.
    rig.broken = set()
    before = len(rig.sent)
    assert rig.call(FLASH, LITE) == LITE
    assert [model for _, model in rig.sent[before:]] == [LITE]


def test_after_the_cooldown_the_broken_project_gets_a_probe_again() -> None:
    rig = Rig(broken={"a"})
    for _ in range(6):
        rig.call(FLASH)
    rig.broken = set()  # project a mended
    rig.clock.advance(31.0)
    for _ in range(4):
        rig.call(FLASH)
    moves = [(e.project, e.old, e.new) for e in rig.events if isinstance(e, BreakerStateChanged)]
    assert moves == [
        ("a", "closed", "open"),
        ("a", "open", "half_open"),
        ("a", "half_open", "closed"),
    ]


async def test_the_async_driver_keeps_breakers_per_project_too() -> None:
    rig = Rig(broken={"b"})
    served = [await rig.acall(FLASH) for _ in range(6)]
    assert served == [FLASH] * 6
    opened = [e for e in rig.events if isinstance(e, BreakerStateChanged) and e.new == "open"]
    assert [(e.project, e.model) for e in opened] == [("b", FLASH)]
