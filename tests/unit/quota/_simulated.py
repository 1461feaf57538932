"""A small discrete-event rehearsal: workers paced by a QuotaLimiter on a FakeClock,
against a server that enforces a sliding-window limit and/or refuses at random.

No sockets and no sleeps: every reserve, confirm and settle happens at the event's
time on the FakeClock, in time order, as the Guard's workers would do them.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gemini_guard.call import Permit
from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Diagnosis, diagnose_http
from gemini_guard.quota import QuotaLimiter

PHANTOM = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    }
}
BARE_429: Diagnosis = diagnose_http(429, PHANTOM)


@dataclass
class Server:
    """Admits a request unless `limit` requests were admitted in the last minute;
    refuses a share `noise` of them at random first, whatever the rate."""

    limit: int | None = None
    noise: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    admitted: deque[float] = field(default_factory=deque)

    def answer(self, at: float) -> bool:
        while self.admitted and self.admitted[0] <= at - 60.0:
            self.admitted.popleft()
        if self.noise and self.rng.random() < self.noise:
            return False
        if self.limit is not None and len(self.admitted) >= self.limit:
            return False
        self.admitted.append(at)
        return True

    def admitted_in_last_minute(self, at: float) -> int:
        return sum(1 for t in self.admitted if t > at - 60.0)


@dataclass
class Outcome:
    at: float  # clock seconds since the start
    ok: bool
    paced_by: int | None  # the limiter's RPM budget right after the settle
    admitted: int  # what the server admitted in the minute before


def rehearse(
    limiter: QuotaLimiter,
    clock: FakeClock,
    server: Server,
    *,
    model: str,
    workers: int,
    seconds: float,
    latency: float = 1.0,
    think: float = 0.0,
    project: str = "p",
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run `workers` loops (reserve, wait, confirm, send, settle, think) for
    `seconds` of the clock; returns every answer in time order."""
    start = clock.monotonic()
    events: list[tuple[float, int, str, Permit | None, bool]] = []
    for worker in range(workers):
        heapq.heappush(events, (start + 0.01 * worker, worker, "reserve", None, False))
    outcomes: list[Outcome] = []
    while events:
        at, worker, step, permit, ok = heapq.heappop(events)
        if at - start >= seconds:
            continue
        clock.advance(at - clock.monotonic())
        if step == "reserve":
            permit = limiter.reserve(project=project, model=model, tokens=10)
            heapq.heappush(events, (at + permit.wait, worker, "confirm", permit, False))
        elif step == "confirm":
            assert permit is not None
            extra = limiter.confirm(permit)
            if extra > 0:
                heapq.heappush(events, (at + extra, worker, "confirm", permit, False))
            else:
                ok = server.answer(clock.time())
                heapq.heappush(events, (at + latency, worker, "settle", permit, ok))
        else:
            assert permit is not None
            limiter.settle(permit, sent=True, diagnosis=None if ok else BARE_429)
            outcome = Outcome(
                at - start,
                ok,
                limiter.budget(project, model).requests,
                server.admitted_in_last_minute(clock.time()),
            )
            outcomes.append(outcome)
            on_outcome(outcome)
            heapq.heappush(events, (at + think, worker, "reserve", None, False))
    return outcomes
