"""The call path, written once: breaker → quota gate → retry loop → transport, per model.

`Engine.steps(...)` is a generator that holds the whole logic of one guarded call. It
never sleeps, sends or touches the quota gate itself: it *yields* what it needs done
(`Wait`, `Reserve`, `Confirm`, `Settle`, `Send`) and is resumed with the outcome. Two thin
drivers carry the effects out, `run_sync` with `Clock.sleep` and plain calls,
`run_async` with `Clock.asleep` and awaits, so sync and async callers get exactly the
same decisions.

    for model in chain:
        parked (per-day quota)?  skip until the Pacific midnight
        breaker admits?          else skip (CircuitOpen when nothing is left)
        quota gate reserve       wait permit.wait on the clock, then confirm the
                                 permit (wait again while it asks for more)
        send                     success: settle, breaker success, budget refill,
                                 return
        failure                  diagnose, settle, breaker failure,
                                 decide_after_failure: Retry (spends from the
                                 model's retry budget) / FallBack / Fail

Time. The call's deadline and every wait go through the injected `Clock`. The
per-attempt timeout is handed to the transport in `AttemptPlan.timeout` (clock
seconds); the Guard passes it to the SDK as `HttpOptions(timeout=ms)`, converting
clock seconds to real ones with the clock's `factor` (a `ScaledClock`). We do not
race the request against `Clock.asleep` or use `asyncio.timeout`: the first would
fire at once on a `FakeClock` (time jumps whenever every task is parked, and a task
waiting on a socket counts as parked), the second reads the loop's real clock and
knows nothing of a scaled one. Letting the HTTP client enforce the timeout behaves
the same in sync and async code and on every clock.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gemini_guard.clock import Clock
from gemini_guard.diagnosis import Category, Diagnosis, diagnose
from gemini_guard.errors import (
    Attempt,
    AttemptsExhausted,
    CallFailed,
    CircuitOpen,
    DailyQuotaExhausted,
    FallbackExhausted,
    QuotaWait,
    RequestRejected,
)
from gemini_guard.policies import (
    Admission,
    Breaker,
    BreakerPolicy,
    BreakerStore,
    BreakerTransition,
    Fail,
    FallBack,
    MemoryBreakerStore,
    ModelProgress,
    ParkingLot,
    Retry,
    RetryBudget,
    RetryPolicy,
    RetrySlots,
    decide_after_failure,
    retry_spacing,
    spends_budget,
)
from gemini_guard.quota_gate import NoQuota, Permit, QuotaGate, TallyingGate
from gemini_guard.secrets import scrubbed
from gemini_guard.telemetry import (
    AttemptFailed,
    AttemptStarted,
    BreakerStateChanged,
    CallFailedEvent,
    CallSucceeded,
    FallbackTaken,
    ModelSkipped,
    QuotaWaited,
    RetryScheduled,
    Telemetry,
)

__all__ = [
    "Admit",
    "AttemptPlan",
    "CallInfo",
    "Confirm",
    "Engine",
    "Outcome",
    "Record",
    "Release",
    "Reserve",
    "Send",
    "Settle",
    "Tally",
    "Wait",
    "run_async",
    "run_sync",
]

T = TypeVar("T")

_log = logging.getLogger("gemini_guard")


@dataclass(slots=True)
class AttemptPlan:
    """What the transport must send: which model, within what time, shrunk or not."""

    model: str
    attempt: int  # 1-based across the call
    timeout: float | None  # clock seconds; None: no limit
    shrink: bool = False  # smaller thinking budget / output cap (after a 504)
    project: str | None = None  # the project the quota gate chose (a pool); None: the Guard's


@dataclass(frozen=True, slots=True)
class CallInfo:
    """How a guarded call went: the model that answered and every attempt made."""

    call_id: str
    model: str | None  # None when the call failed
    attempts: tuple[Attempt, ...]
    elapsed: float  # clock seconds, waits included
    requested: str | None = None  # the call's own model=; None when not recorded

    @property
    def attempt_count(self) -> int:
        """Requests actually sent (skipped models not counted)."""
        return sum(1 for a in self.attempts if a.sent)

    @property
    def served_by_requested(self) -> bool:
        """Whether the model the call asked for answered it (False for a fallback
        model's answer and for a failed call)."""
        return self.model is not None and (self.requested is None or self.model == self.requested)


# Effects the call logic asks its driver to perform. Like `AttemptPlan` and
# `Outcome`, they are built several times per call and never changed after: plain
# slotted dataclasses, since a frozen one costs about four times as much to build.
@dataclass(slots=True)
class Wait:
    seconds: float


@dataclass(slots=True)
class Reserve:
    project: str
    model: str
    tokens: int
    # A pool's projects not to book on (their breaker for the model refuses).
    exclude: frozenset[str] = frozenset()


@dataclass(slots=True)
class Settle:
    permit: Permit
    sent: bool
    input_tokens: int | None = None
    diagnosis: Diagnosis | None = None


@dataclass(slots=True)
class Confirm:
    """Just before sending: ask the gate whether the permit still holds (it answers
    the extra seconds to wait; 0.0 means send now)."""

    permit: Permit


@dataclass(slots=True)
class Tally:
    """An attempt sent without a permit (the gate paces nothing on its model yet)
    has ended: let the gate count it and learn from its failure."""

    project: str
    model: str
    tokens: int
    input_tokens: int | None = None
    diagnosis: Diagnosis | None = None
    sent_at: float | None = None


@dataclass(slots=True)
class Admit:
    """Ask a breaker kept in a shared store (SQLite, Redis) to admit an attempt.
    Breakers in memory are asked inline; these round trips are effects so that the
    async driver awaits them instead of blocking its event loop."""

    breaker: Breaker
    now: float


@dataclass(slots=True)
class Record:
    """Tell a shared-store breaker how an attempt ended (`diagnosis` None: success)."""

    breaker: Breaker
    now: float
    diagnosis: Diagnosis | None
    probe: bool


@dataclass(slots=True)
class Release:
    """Hand a half-open probe back to a shared-store breaker (it was never sent)."""

    breaker: Breaker


@dataclass(slots=True)
class Send:
    plan: AttemptPlan


Effect = Wait | Reserve | Confirm | Settle | Tally | Admit | Record | Release | Send


@dataclass(slots=True)
class Outcome(Generic[T]):
    """What a `Reserve` or `Send` came to: a value, or the exception it raised."""

    value: T | None = None
    error: Exception | None = None


Steps = Generator[Effect, Outcome[Any] | None, tuple[T, CallInfo]]


_NO_PROJECTS: frozenset[str] = frozenset()

# The admission of a pool's attempt before the pool has chosen its project (the
# project's breaker is asked then). Compared by identity.
_POOL_PENDING = Admission(True, "closed")


def _synthetic(category: Category, message: str, retry_after: float | None = None) -> Diagnosis:
    """A diagnosis for a call that failed without any request (breaker open, parked)."""
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason=None,
        message=message,
        category=category,
        retryable=category is not Category.DAILY_QUOTA_EXHAUSTED,
        retry_after=retry_after,
    )


def _per_day(diagnosis: Diagnosis) -> bool:
    quota = diagnosis.quota
    return diagnosis.category is Category.DAILY_QUOTA_EXHAUSTED or (
        diagnosis.category is Category.RATE_LIMITED and quota is not None and quota.scope == "day"
    )


class _CallState:
    """Book-keeping of one call (mutable, private to `Engine.steps`)."""

    __slots__ = (
        "attempts",
        "breaker_until",
        "call_id",
        "final",
        "last",
        "last_error",
        "last_model",
        "parked",
        "sent",
        "sent_models",
        "started",
    )

    def __init__(self, call_id: str, started: float) -> None:
        self.call_id = call_id
        self.started = started
        self.attempts: list[Attempt] = []
        self.sent = 0  # attempts really sent (skipped models are attempts too)
        self.sent_models: list[str] = []
        self.breaker_until: list[float] = []
        self.parked: list[float] = []
        self.final: Fail | None = None
        self.last: Diagnosis | None = None
        self.last_error: BaseException | None = None
        self.last_model: str | None = None


class Engine:
    """The shared state of one Guard's calls and the logic of one call.

    `breakers` are per project and model ("project/model" keys in `breaker_store`);
    `budget` (a bucket per "project/model") and `parking` are shared by every call
    made through this engine. Every call starts from its own model, `chain[0]`.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        retry: RetryPolicy,
        breaker: BreakerPolicy,
        breaker_store: BreakerStore,
        telemetry: Telemetry,
        quota: QuotaGate | None = None,
        project: str = "default",
        budget: RetryBudget | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.retry = retry
        self.breaker_policy = breaker
        self.breaker_store = breaker_store
        self.telemetry = telemetry
        self.quota: QuotaGate = quota if quota is not None else NoQuota()
        # A real gate paces every attempt and keeps the FIFO line of waiting calls
        # itself; then the Guard's own `RetrySlots` line steps aside (see `steps`).
        self.pacing = not isinstance(self.quota, NoQuota)
        # A gate that can say "nothing to pace on this model yet" is asked before
        # each attempt; the attempt then goes out at once and is tallied afterwards.
        self._tallying: TallyingGate | None = (
            self.quota if isinstance(self.quota, TallyingGate) else None
        )
        self.project = project
        # A pool of projects ("*"): the gate picks the project of each attempt, and
        # each (project, model) has its own breaker: one project's broken key or
        # region says nothing about the model in the others.
        self.pooled = project == "*"
        self._pool_projects: tuple[str, ...] = (
            tuple(p.name for p in getattr(self.quota, "projects", ())) if self.pooled else ()
        )
        self.budget = budget if budget is not None else RetryBudget()
        # Breakers in a shared store do I/O: their admit/record are yielded as
        # effects (see `Admit`); in memory they are asked inline.
        self._shared_breakers = not isinstance(breaker_store, MemoryBreakerStore)
        self.parking = ParkingLot()
        self.retry_slots = RetrySlots()
        self.rng = rng if rng is not None else random.Random()
        # Call ids: unique per engine and across processes, cheaper than uuid4.
        self._id_prefix = secrets.token_hex(4)
        self._ids = itertools.count()
        # Per model (a pool's engine: per (project, model)): its "project/model"
        # key and its Breaker. A Breaker holds no state of its own (that lives in
        # the store), so one per lane serves every call instead of one per call.
        self._lanes: dict[str | tuple[str, str], tuple[str, Breaker]] = {}

    def _lane(self, model: str) -> tuple[str, Breaker]:
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._new_lane(model, f"{self.project}/{model}")
        return lane

    def _new_lane(self, slot: str | tuple[str, str], key: str) -> tuple[str, Breaker]:
        lane = (key, Breaker(key, policy=self.breaker_policy, store=self.breaker_store))
        if len(self._lanes) >= 1024:  # bounded: model names come from callers
            self._lanes.clear()
        self._lanes[slot] = lane
        return lane

    def paces(self, model: str) -> bool:
        """Whether an attempt on `model` would reserve a permit now (False without a
        gate, or while the gate knows no limit for it: the attempt is only tallied)."""
        if not self.pacing:
            return False
        tallying = self._tallying
        return tallying is None or tallying.paces(self.project, model)

    def breaker(self, model: str, project: str | None = None) -> Breaker:
        """The breaker of `model` (in `project`, for a pool's engine)."""
        if project is None or not self.pooled:
            return self._lane(model)[1]
        return self._pool_lane(project, model)

    def _pool_lane(self, project: str, model: str) -> Breaker:
        lane = self._lanes.get((project, model))
        if lane is None:
            lane = self._new_lane((project, model), f"{project}/{model}")
        return lane[1]

    def _pool_refusals(self, model: str, now: float) -> tuple[frozenset[str], float | None]:
        """The pool's projects whose breaker for `model` refuses now, and the earliest
        time one of them reopens."""
        refused: set[str] = set()
        soonest: float | None = None
        for project in self._pool_projects:
            admission = self._pool_lane(project, model).peek(now)
            if not admission.allowed:
                refused.add(project)
                if admission.retry_at is not None:
                    soonest = (
                        admission.retry_at if soonest is None else min(soonest, admission.retry_at)
                    )
        return frozenset(refused), soonest

    def _key(self, model: str) -> str:
        return self._lane(model)[0]

    def _usable(self, model: str) -> bool:
        now = self.clock.time()
        if self.parking.parked_until(self._key(model), now) is not None:
            return False
        if self.pooled and self._pool_projects:
            refused, _ = self._pool_refusals(model, now)
            return len(refused) < len(self._pool_projects)
        return self.breaker(model).peek(now).allowed

    def _next_usable(self, chain: tuple[str, ...], index: int) -> str | None:
        return next((m for m in chain[index + 1 :] if self._usable(m)), None)

    def _skip_parked(self, state: _CallState, model: str, parked: float) -> None:
        state.parked.append(parked)
        state.attempts.append(
            Attempt(model, Category.DAILY_QUOTA_EXHAUSTED, project=self.project, sent=False)
        )
        self.telemetry.emit(
            ModelSkipped(
                timestamp=self.clock.time(),
                call_id=state.call_id,
                model=model,
                reason="parked",
                until=parked,
            )
        )

    def _emit_move(
        self,
        state: _CallState,
        model: str,
        move: BreakerTransition | None,
        project: str | None = None,
    ) -> None:
        if move is None:
            return
        self.telemetry.emit(
            BreakerStateChanged(
                timestamp=self.clock.time(),
                call_id=state.call_id,
                model=model,
                old=move.old,
                new=move.new,
                reason=move.reason,
                open_until=move.open_until,
                project=project,
            )
        )
        level = logging.WARNING if move.new == "open" else logging.INFO
        where = model if project is None else f"{model} in project {project}"
        _log.log(
            level, "circuit breaker of %s: %s -> %s (%s)", where, move.old, move.new, move.reason
        )

    def _skip_open(self, state: _CallState, model: str, until: float | None) -> None:
        state.breaker_until.append(until if until is not None else self.clock.time())
        state.attempts.append(Attempt(model, None, project=self.project, sent=False))
        self.telemetry.emit(
            ModelSkipped(
                timestamp=self.clock.time(),
                call_id=state.call_id,
                model=model,
                reason="breaker_open",
                until=until,
            )
        )

    def _fallback_event(
        self,
        state: _CallState,
        model: str,
        diagnosis: Diagnosis,
        reason: str,
        to_model: str | None,
        *,
        warning: str | None = None,
        park_until: float | None = None,
    ) -> None:
        self.telemetry.emit(
            FallbackTaken(
                timestamp=self.clock.time(),
                call_id=state.call_id,
                model=model,
                http_status=diagnosis.http_status,
                grpc_status=diagnosis.grpc_status,
                category=str(diagnosis.category),
                message=diagnosis.message,
                reason=reason,
                to_model=to_model,
                warning=warning,
                park_until=park_until,
            )
        )

    def steps(
        self,
        chain: tuple[str, ...],
        *,
        tokens: int,
        input_tokens_of: Callable[[T], int | None],
        use_quota: bool = True,
    ) -> Steps[T]:
        """The logic of one call over `chain`, as a generator of effects (see module doc)."""
        if not chain:
            raise ValueError("a guarded call needs at least one model")
        # No gate, nothing to reserve: skip the round trips through the driver.
        use_quota = use_quota and self.pacing
        # Who keeps the line of calls waiting on a model's per-minute quota: the
        # quota gate when one paces (its FIFO booking), else `RetrySlots`, which
        # remembers the server's "retry in d" and spaces the waiters. Never both:
        # they would each add their own spacing and every caller would wait twice.
        line_up = not self.pacing
        clock = self.clock
        # Build the events of the successful path only when a sink wants them.
        listening = self.telemetry.listening()
        tallying = self._tallying if use_quota else None
        shared = self._shared_breakers
        state = _CallState(f"{self._id_prefix}{next(self._ids):08x}", clock.monotonic())
        deadline_at = None if self.retry.deadline is None else state.started + self.retry.deadline

        for index, model in enumerate(chain):
            key, breaker = self._lane(model)
            parked = self.parking.parked_until(key, clock.time())
            if parked is not None:
                self._skip_parked(state, model, parked)
                continue
            failures = 0
            shrunk = False
            shrink_next = False
            waited = 0.0
            # A pool: projects whose breaker refused a permit during this model's turn.
            refused_here: set[str] = set()
            while True:
                # One reading of each clock per step until something is yielded.
                mono = clock.monotonic()
                if deadline_at is not None and mono >= deadline_at:
                    state.final = Fail("exhausted", "the call's deadline has passed")
                    break
                exclude = _NO_PROJECTS
                if self.pooled and self._pool_projects:
                    # Each project's breaker is asked once the pool has chosen one;
                    # here, only which projects to keep out of the choice.
                    refused, soonest = self._pool_refusals(model, clock.time())
                    exclude = refused | refused_here
                    if len(exclude) >= len(self._pool_projects):
                        self._skip_open(state, model, soonest)
                        break
                    admission = _POOL_PENDING
                else:
                    if shared:
                        admission, move = _admitted((yield Admit(breaker, clock.time())))
                    else:
                        admission, move = breaker.admit(clock.time())
                    if move is not None:
                        self._emit_move(state, model, move)
                    if not admission.allowed:
                        self._skip_open(state, model, admission.retry_at)
                        break

                if failures == 0 and line_up:
                    # Others are waiting for this model's quota to reopen: join the
                    # line rather than draw a 429 and push them back.
                    line = self.retry_slots.join(key, now=mono)
                    if line > 0 and (deadline_at is None or mono + line < deadline_at):
                        self.telemetry.emit(
                            QuotaWaited(
                                timestamp=clock.time(),
                                call_id=state.call_id,
                                model=model,
                                project=self.project,
                                wait=line,
                            )
                        )
                        yield Wait(line)
                        waited += line

                permit: Permit | None = None
                paced = use_quota and (tallying is None or tallying.paces(self.project, model))
                if paced:
                    reserved = yield Reserve(self.project, model, tokens, exclude)
                    assert reserved is not None
                    if reserved.error is not None:
                        error = reserved.error
                        if isinstance(error, DailyQuotaExhausted) and exclude:
                            # Every project the pool could choose is spent for the
                            # day, but others are only broken: not parked till midnight.
                            state.last, state.last_model = error.diagnosis, model
                            _, soonest = self._pool_refusals(model, clock.time())
                            self._skip_open(state, model, soonest)
                            break
                        if isinstance(error, DailyQuotaExhausted):
                            self.parking.park(key, error.reset_at)
                            state.parked.append(error.reset_at)
                            state.last, state.last_model = error.diagnosis, model
                            state.attempts.append(
                                Attempt(
                                    model,
                                    Category.DAILY_QUOTA_EXHAUSTED,
                                    project=self.project,
                                    sent=False,
                                )
                            )
                            self.telemetry.emit(
                                ModelSkipped(
                                    timestamp=clock.time(),
                                    call_id=state.call_id,
                                    model=model,
                                    reason="quota",
                                    until=error.reset_at,
                                )
                            )
                            break
                        if isinstance(error, QuotaWait):
                            nxt = self._next_usable(chain, index)
                            state.last, state.last_model = error.diagnosis, model
                            if nxt is not None:
                                self._fallback_event(
                                    state, model, error.diagnosis, "quota wait too long", nxt
                                )
                                break
                            state.final = Fail("quota_wait", str(error), wait=error.wait)
                            break
                        raise error
                    permit = reserved.value
                    assert isinstance(permit, Permit)
                    if admission is _POOL_PENDING:
                        # The pool chose a project: now its breaker for the model
                        # decides (and takes a probe slot when half-open).
                        breaker = self._pool_lane(permit.project, model)
                        if shared:
                            asked = yield Admit(breaker, clock.time())
                            if asked is not None and asked.error is not None:
                                yield Settle(permit, sent=False)
                            admission, move = _admitted(asked)
                        else:
                            admission, move = breaker.admit(clock.time())
                        self._emit_move(state, model, move, permit.project)
                        if not admission.allowed:
                            yield Settle(permit, sent=False)
                            refused_here.add(permit.project)
                            continue
                    if permit.wait > 0:
                        if (
                            deadline_at is not None
                            and clock.monotonic() + permit.wait >= deadline_at
                        ):
                            yield Settle(permit, sent=False)
                            state.final = Fail(
                                "quota_wait",
                                "the quota wait would overrun the deadline",
                                wait=permit.wait,
                            )
                            break
                        self.telemetry.emit(
                            QuotaWaited(
                                timestamp=clock.time(),
                                call_id=state.call_id,
                                model=model,
                                project=self.project,
                                wait=permit.wait,
                            )
                        )
                        yield Wait(permit.wait)
                        waited += permit.wait
                    # The permit is a plan: confirm it just before sending, and
                    # wait again as long as the gate re-plans it later.
                    while True:
                        confirmed = yield Confirm(permit)
                        assert confirmed is not None
                        if confirmed.error is not None:
                            yield Settle(permit, sent=False)
                            raise confirmed.error
                        extra = float(confirmed.value or 0.0)
                        if not extra > 0.0:
                            break
                        if deadline_at is not None and clock.monotonic() + extra >= deadline_at:
                            yield Settle(permit, sent=False)
                            state.final = Fail(
                                "quota_wait",
                                "the quota wait would overrun the deadline",
                                wait=extra,
                            )
                            break
                        self.telemetry.emit(
                            QuotaWaited(
                                timestamp=clock.time(),
                                call_id=state.call_id,
                                model=model,
                                project=self.project,
                                wait=extra,
                            )
                        )
                        yield Wait(extra)
                        waited += extra
                    if state.final is not None:
                        break

                # While this call waited (backoff, quota), another one may have
                # learned that the model's day is spent: do not send into that.
                # (Not waited: the check at the top of the model was just made.)
                parked = (
                    self.parking.parked_until(key, clock.time())
                    if paced or waited or failures
                    else None
                )
                if parked is not None:
                    if permit is not None:
                        yield Settle(permit, sent=False)
                    if admission.probe:  # hand the probe back: it was never sent
                        if shared:
                            yield Release(breaker)
                        else:
                            breaker.release_probe()
                    self._skip_parked(state, model, parked)
                    break

                state.sent += 1
                attempt_no = state.sent
                timeout = self.retry.attempt_timeout
                began = clock.monotonic()
                if deadline_at is not None:
                    left = max(0.001, deadline_at - began)
                    timeout = left if timeout is None else min(timeout, left)
                if listening:
                    self.telemetry.emit(
                        AttemptStarted(
                            timestamp=clock.time(),
                            call_id=state.call_id,
                            model=model,
                            attempt=attempt_no,
                            attempt_on_model=failures + 1,
                            probe=admission.probe,
                            shrunk=shrink_next,
                        )
                    )
                if model not in state.sent_models:
                    state.sent_models.append(model)
                project = permit.project if permit is not None else self.project
                sent = yield Send(AttemptPlan(model, attempt_no, timeout, shrink_next, project))
                assert sent is not None
                shrink_next = False

                if sent.error is None:
                    value: T = sent.value  # type: ignore[assignment]
                    used = input_tokens_of(value)
                    if permit is not None:
                        yield Settle(permit, sent=True, input_tokens=used)
                    elif tallying is not None:
                        yield Tally(self.project, model, tokens, used, None, began)
                    if shared:
                        recorded = yield Record(breaker, clock.time(), None, admission.probe)
                        move = None if recorded is None else recorded.value
                    else:
                        move = breaker.record(clock.time(), None, probe=admission.probe)
                    if move is not None:
                        self._emit_move(
                            state,
                            model,
                            move,
                            permit.project if self.pooled and permit is not None else None,
                        )
                    self.budget.record_success(key)
                    state.attempts.append(Attempt(model, None, waited, 200, project))
                    info = CallInfo(
                        state.call_id,
                        model,
                        tuple(state.attempts),
                        clock.monotonic() - state.started,
                        chain[0],
                    )
                    if listening:
                        self.telemetry.emit(
                            CallSucceeded(
                                timestamp=clock.time(),
                                call_id=state.call_id,
                                model=model,
                                attempts=info.attempt_count,
                                elapsed=info.elapsed,
                                input_tokens=used,
                                requested=chain[0],
                                served_by_requested=model == chain[0],
                            )
                        )
                    return value, info

                diagnosis = diagnose(sent.error, now=clock.time())
                state.last_error = sent.error
                if permit is not None:
                    yield Settle(permit, sent=True, diagnosis=diagnosis)
                elif tallying is not None:
                    yield Tally(self.project, model, tokens, None, diagnosis, began)
                if shared:
                    recorded = yield Record(breaker, clock.time(), diagnosis, admission.probe)
                    move = None if recorded is None else recorded.value
                else:
                    move = breaker.record(clock.time(), diagnosis, probe=admission.probe)
                self._emit_move(
                    state,
                    model,
                    move,
                    permit.project if self.pooled and permit is not None else None,
                )
                failures += 1
                state.last, state.last_model = diagnosis, model
                state.attempts.append(
                    Attempt(model, diagnosis.category, waited, diagnosis.http_status, project)
                )
                waited = 0.0
                self.telemetry.emit(
                    AttemptFailed(
                        timestamp=clock.time(),
                        call_id=state.call_id,
                        model=model,
                        http_status=diagnosis.http_status,
                        grpc_status=diagnosis.grpc_status,
                        category=str(diagnosis.category),
                        message=diagnosis.message,
                        attempt=attempt_no,
                        elapsed=clock.monotonic() - began,
                    )
                )
                nxt = self._next_usable(chain, index)
                # The model's breaker refuses now (this failure opened it, or another
                # call's did): move on at once instead of waiting out a backoff only
                # to be refused. A shared store is not read again here (that is I/O);
                # its breaker is asked at the next admission. In a pool, one project's
                # breaker is not the model's: the next reservation leaves it out.
                model_open = not self.pooled and (
                    (move is not None and move.new == "open")
                    or (not shared and not breaker.peek(clock.time()).allowed)
                )
                decision = decide_after_failure(
                    diagnosis,
                    progress=ModelProgress(failures=failures, shrunk=shrunk),
                    policy=self.retry,
                    has_next=nxt is not None,
                    budget_allows=self.budget.allows_retry(key),
                    now=clock.monotonic(),
                    now_wall=clock.time(),
                    deadline_at=deadline_at,
                    rng=self.rng,
                    model_open=model_open,
                )
                if self.pooled and _per_day(diagnosis) and not isinstance(decision, Retry):
                    # One project's day is spent, not the model's: the settle above told
                    # the pool, whose next reserve picks another project (or raises
                    # DailyQuotaExhausted when every project is spent: then park).
                    decision = Retry(0.0, "another project of the pool")
                if isinstance(decision, Retry):
                    if spends_budget(diagnosis):
                        self.budget.record_retry(key)
                    delay = decision.delay
                    if line_up:
                        delay = self.retry_slots.schedule(
                            key,
                            now=clock.monotonic(),
                            delay=decision.delay,
                            spacing=retry_spacing(diagnosis),
                        )
                    if delay != decision.delay:
                        if deadline_at is not None and clock.monotonic() + delay >= deadline_at:
                            delay = decision.delay  # keep the deadline rather than the line
                        decision = Retry(delay, decision.reason, decision.shrink)
                    self.telemetry.emit(
                        RetryScheduled(
                            timestamp=clock.time(),
                            call_id=state.call_id,
                            model=model,
                            http_status=diagnosis.http_status,
                            grpc_status=diagnosis.grpc_status,
                            category=str(diagnosis.category),
                            message=diagnosis.message,
                            attempt=attempt_no,
                            reason=decision.reason,
                            delay=decision.delay,
                            shrink=decision.shrink,
                        )
                    )
                    yield Wait(decision.delay)
                    waited = decision.delay
                    shrink_next = decision.shrink
                    shrunk = shrunk or decision.shrink
                    continue
                if isinstance(decision, FallBack):
                    if decision.park_until is not None:
                        self.parking.park(key, decision.park_until)
                        state.parked.append(decision.park_until)
                    if decision.warning is not None:
                        _log.warning("%s: %s", model, decision.warning)
                    self._fallback_event(
                        state,
                        model,
                        diagnosis,
                        decision.reason,
                        nxt,
                        warning=decision.warning,
                        park_until=decision.park_until,
                    )
                    break
                if decision.reset_at is not None:
                    self.parking.park(key, decision.reset_at)
                state.final = decision
                break
            if state.final is not None:
                break

        raise self._failure(state, chain) from scrubbed(state.last_error)

    def _failure(self, state: _CallState, chain: tuple[str, ...]) -> CallFailed:
        clock = self.clock
        final = state.final
        attempts = tuple(state.attempts)
        diagnosis = state.last
        error: CallFailed
        if final is not None and final.kind == "rejected":
            assert diagnosis is not None
            error = RequestRejected(
                f"request rejected ({final.reason})", diagnosis=diagnosis, attempts=attempts
            )
        elif final is not None and final.kind == "daily_quota":
            assert diagnosis is not None
            assert final.reset_at is not None
            error = DailyQuotaExhausted(
                f"daily quota exhausted on {state.last_model}; it resets at the Pacific midnight",
                diagnosis=diagnosis,
                attempts=attempts,
                reset_at=final.reset_at,
            )
        elif final is not None and final.kind == "quota_wait":
            wait = final.wait or 0.0
            diagnosis = diagnosis or _synthetic(
                Category.RATE_LIMITED, "the quota wait is too long", retry_after=wait
            )
            error = QuotaWait(
                f"quota wait of {wait:.1f}s is more than allowed ({final.reason})",
                diagnosis=diagnosis,
                attempts=attempts,
                wait=wait,
            )
        elif not state.sent_models and state.breaker_until:
            retry_at = min(state.breaker_until)
            wait = max(0.0, retry_at - clock.time())
            diagnosis = _synthetic(
                Category.OVERLOADED,
                f"circuit breaker open for {', '.join(chain)}; next probe in {wait:.0f}s",
                retry_after=wait,
            )
            error = CircuitOpen(
                f"circuit open for every usable model; next probe in {wait:.0f}s",
                diagnosis=diagnosis,
                attempts=attempts,
            )
        elif not state.sent_models and state.parked:
            reset_at = min(state.parked)
            diagnosis = diagnosis or _synthetic(
                Category.DAILY_QUOTA_EXHAUSTED,
                "every model of the chain has spent its daily quota",
                retry_after=max(0.0, reset_at - clock.time()),
            )
            error = DailyQuotaExhausted(
                "every model of the chain has spent its daily quota",
                diagnosis=diagnosis,
                attempts=attempts,
                reset_at=reset_at,
            )
        else:
            if diagnosis is None:
                diagnosis = _synthetic(Category.UNKNOWN, "no model of the chain could be tried")
            reason = final.reason if final is not None else "no usable model left in the chain"
            cls: type[CallFailed] = (
                FallbackExhausted if len(state.sent_models) > 1 else AttemptsExhausted
            )
            error = cls(
                f"{reason}; last failure on {state.last_model}: {diagnosis.category}"
                f" ({diagnosis.http_status or '-'} {diagnosis.grpc_status or ''})".rstrip(),
                diagnosis=diagnosis,
                attempts=attempts,
            )
        sent = sum(1 for a in attempts if a.sent)
        self.telemetry.emit(
            CallFailedEvent(
                timestamp=clock.time(),
                call_id=state.call_id,
                model=state.last_model or chain[0],
                http_status=error.diagnosis.http_status,
                grpc_status=error.diagnosis.grpc_status,
                category=str(error.diagnosis.category),
                message=error.diagnosis.message,
                error=type(error).__name__,
                reason=str(error),
                attempts=sent,
                elapsed=clock.monotonic() - state.started,
            )
        )
        return error


def _admitted(
    outcome: Outcome[Any] | None,
) -> tuple[Admission, BreakerTransition | None]:
    """What an `Admit` effect came to (a store error is raised)."""
    assert outcome is not None
    if outcome.error is not None:
        raise outcome.error
    value = outcome.value
    assert isinstance(value, tuple)
    return value


def _record(effect: Record) -> BreakerTransition | None:
    # The attempt is over: a breaker store failing now must not turn its answer
    # into an error (the same as a quota gate failing to settle).
    try:
        return effect.breaker.record(effect.now, effect.diagnosis, probe=effect.probe)
    except Exception:
        _log.exception("circuit breaker store failed to record an attempt")
        return None


async def _arecord(effect: Record) -> BreakerTransition | None:
    try:
        return await effect.breaker.arecord(effect.now, effect.diagnosis, probe=effect.probe)
    except Exception:
        _log.exception("circuit breaker store failed to record an attempt")
        return None


def _release(effect: Release) -> None:
    try:
        effect.breaker.release_probe()
    except Exception:
        _log.exception("circuit breaker store failed to release a probe")


async def _arelease(effect: Release) -> None:
    try:
        await effect.breaker.arelease_probe()
    except Exception:
        _log.exception("circuit breaker store failed to release a probe")


def run_sync(
    steps: Steps[T], *, clock: Clock, quota: QuotaGate, send: Callable[[AttemptPlan], T]
) -> tuple[T, CallInfo]:
    """Carry out a call's effects in the calling thread."""
    reply: Outcome[Any] | None = None
    advance = steps.send
    while True:
        try:
            effect = advance(reply)
        except StopIteration as stop:
            result: tuple[T, CallInfo] = stop.value
            return result
        reply = None
        # The send first, by exact type: the effects are never subclassed, and
        # `type(x) is C` is the cheapest test on the path every call takes.
        if type(effect) is Send:
            try:
                reply = Outcome(value=send(effect.plan))
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Tally):
            try:
                quota.tally(  # type: ignore[attr-defined]  # a TallyingGate (see steps)
                    project=effect.project,
                    model=effect.model,
                    tokens=effect.tokens,
                    input_tokens=effect.input_tokens,
                    diagnosis=effect.diagnosis,
                    sent_at=effect.sent_at,
                )
            except Exception:
                _log.exception("quota gate failed to tally an attempt")
        elif isinstance(effect, Admit):
            try:
                reply = Outcome(value=effect.breaker.admit(effect.now))
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Record):
            reply = Outcome(value=_record(effect))
        elif isinstance(effect, Release):
            _release(effect)
        elif isinstance(effect, Wait):
            clock.sleep(effect.seconds)
        elif isinstance(effect, Reserve):
            try:
                if effect.exclude:  # only a pool's engine excludes: the gate is a pool
                    permit = quota.reserve(  # type: ignore[call-arg]
                        project=effect.project,
                        model=effect.model,
                        tokens=effect.tokens,
                        exclude=effect.exclude,
                    )
                else:
                    permit = quota.reserve(
                        project=effect.project, model=effect.model, tokens=effect.tokens
                    )
                reply = Outcome(value=permit)
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Confirm):
            try:
                reply = Outcome(value=quota.confirm(effect.permit))
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Settle):
            try:
                quota.settle(
                    effect.permit,
                    sent=effect.sent,
                    input_tokens=effect.input_tokens,
                    diagnosis=effect.diagnosis,
                )
            except Exception:
                _log.exception("quota gate failed to settle a permit")
        else:  # every effect is one of the above (a Send was taken first)
            raise TypeError(f"unknown effect {effect!r}")


async def run_async(
    steps: Steps[T],
    *,
    clock: Clock,
    quota: QuotaGate,
    send: Callable[[AttemptPlan], Awaitable[T]],
) -> tuple[T, CallInfo]:
    """Carry out a call's effects as an asyncio task."""
    reply: Outcome[Any] | None = None
    advance = steps.send
    while True:
        try:
            effect = advance(reply)
        except StopIteration as stop:
            result: tuple[T, CallInfo] = stop.value
            return result
        reply = None
        # The send first, as in `run_sync`: the effect every call yields.
        if type(effect) is Send:
            try:
                reply = Outcome(value=await send(effect.plan))
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Wait):
            await clock.asleep(effect.seconds)
        elif isinstance(effect, Admit):
            try:
                reply = Outcome(value=await effect.breaker.aadmit(effect.now))
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Record):
            reply = Outcome(value=await _arecord(effect))
        elif isinstance(effect, Release):
            await _arelease(effect)
        elif isinstance(effect, Reserve):
            try:
                if effect.exclude:
                    permit = await quota.areserve(  # type: ignore[call-arg]
                        project=effect.project,
                        model=effect.model,
                        tokens=effect.tokens,
                        exclude=effect.exclude,
                    )
                else:
                    permit = await quota.areserve(
                        project=effect.project, model=effect.model, tokens=effect.tokens
                    )
                reply = Outcome(value=permit)
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Confirm):
            try:
                reply = Outcome(value=await quota.aconfirm(effect.permit))
            except Exception as exc:
                reply = Outcome(error=exc)
        elif isinstance(effect, Settle):
            try:
                await quota.asettle(
                    effect.permit,
                    sent=effect.sent,
                    input_tokens=effect.input_tokens,
                    diagnosis=effect.diagnosis,
                )
            except Exception:
                _log.exception("quota gate failed to settle a permit")
        elif isinstance(effect, Tally):
            try:
                await quota.atally(  # type: ignore[attr-defined]  # a TallyingGate
                    project=effect.project,
                    model=effect.model,
                    tokens=effect.tokens,
                    input_tokens=effect.input_tokens,
                    diagnosis=effect.diagnosis,
                    sent_at=effect.sent_at,
                )
            except Exception:
                _log.exception("quota gate failed to tally an attempt")
        else:  # every effect is one of the above (a Send was taken first)
            raise TypeError(f"unknown effect {effect!r}")
