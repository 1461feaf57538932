"""Ordinary bad afternoons, through the real SDK and the Guard's defaults, on a FakeClock.

The emulator scripts the failures (tier1, so no quota is involved); calls go one
after another, and the clock moves only when the Guard waits or the test says so.
"""

from __future__ import annotations

from typing import Any

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Fault, Scenario, serve
from gemini_guard.guard import Guard, guard_info
from gemini_guard.telemetry import Event, FallbackTaken
from tests.support.sdk_clients import emulator_client

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
KEY = "AIzaSyMIXESTESTKEY-do-not-log-0123456789"


def _scenario(seed: int, *faults: Fault) -> Scenario:
    return Scenario(name="mix", seed=seed, default_tier="tier1", faults=faults)


def _requests(server: EmulatorServer, model: str) -> int:
    stats: dict[str, Any] = server.emulator.stats()
    return sum(m[model]["requests"] for m in stats["projects"].values() if model in m)


def _guard(
    server: EmulatorServer, clock: FakeClock, chain: list[str], events: list[Event]
) -> Guard:
    return Guard(
        client=emulator_client(server, KEY),
        models=chain,
        clock=clock,
        hooks=[events.append],
        log=False,
        seed=3,
    )


def test_a_flaky_model_keeps_the_calls_that_asked_for_it() -> None:
    # Every model: 25% 503 and another 10% 500. Nothing is lost, the retry budget
    # never turns a retry into a fallback, and pro answers nearly every call.
    clock = FakeClock()
    flaky = _scenario(
        21,
        Fault(kind="overloaded", probability=0.25),
        Fault(kind="internal", probability=0.10 / 0.75),
    )
    events: list[Event] = []
    with serve(flaky, clock=clock) as server:
        guard = _guard(server, clock, [PRO, FLASH, LITE], events)
        infos = []
        for i in range(60):
            response = guard.models.generate_content(model=PRO, contents=f"note {i}")
            infos.append(guard_info(response))
            clock.advance(1.0)
        guard.close()
    assert all(info is not None for info in infos)
    by_pro = sum(1 for info in infos if info is not None and info.served_by_requested)
    assert by_pro >= 54  # at least 90%; a call leaves pro only after 3 failures (4%)
    fallbacks = [e for e in events if isinstance(e, FallbackTaken)]
    assert all("3 failed attempts" in e.reason for e in fallbacks)


def test_a_dead_model_is_left_within_three_calls_and_each_call_still_asks_for_it() -> None:
    clock = FakeClock()
    down = _scenario(
        22,
        Fault(kind="overloaded", models=(PRO,)),
        Fault(kind="internal", models=(FLASH,), probability=0.30),
    )
    events: list[Event] = []
    with serve(down, clock=clock) as server:
        guard = _guard(server, clock, [PRO, FLASH], events)
        served = [
            guard.models.generate_content(model=PRO, contents=f"note {i}").model_version
            for i in range(20)
        ]
        to_pro = _requests(server, PRO)
        guard.close()
    assert served == [FLASH] * 20
    # 3 + 3 + 2: the 8th failure in a row opens pro's breaker, and that call falls
    # back at once; later calls skip pro while it is open (the clock moved only by
    # the backoffs, less than the 5 s before the first probe)
    assert to_pro == 8
    assert clock.monotonic() < 60.0


def test_after_a_blip_the_calls_go_back_to_the_model_they_asked_for() -> None:
    clock = FakeClock()
    blip = _scenario(23, Fault(kind="overloaded", models=(PRO,), end=60.0))
    events: list[Event] = []
    with serve(blip, clock=clock) as server:
        start = clock.monotonic()
        guard = _guard(server, clock, [PRO, FLASH], events)
        served: list[tuple[float, str | None]] = []
        while clock.monotonic() - start < 120.0:
            began = clock.monotonic() - start
            response = guard.models.generate_content(model=PRO, contents="hello")
            served.append((began, response.model_version))
            clock.advance(2.0)
        guard.close()
    during = [m for t, m in served if t < 55.0]
    after = [m for t, m in served if t >= 65.0]
    assert set(during) == {FLASH}
    # the breaker probes every 5 s while the outage is young: pro is back within
    # 5 s of the blip's end, and every later call is its own
    assert after
    assert set(after) == {PRO}
