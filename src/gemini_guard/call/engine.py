"""The call path, written once: breaker → quota gate → retry loop → transport, per model.

`Engine.steps(...)` is a generator that holds the whole logic of one guarded call. It
never sleeps, sends or touches the quota gate itself: it *yields* effects
(`gemini_guard.call.effects`) and is resumed with what they came to. The drivers
(`gemini_guard.call.driver`) carry them out, `run_sync` with `Clock.sleep` and plain
calls, `run_async` with `Clock.asleep` and awaits, so sync and async callers get
exactly the same decisions.

The logic is a few small stages, each a sub-generator (`yield from`) that decides one
thing:

    for model in chain:                                   steps, _turn
        parked (per-day quota)?  skip until the Pacific midnight
        _admit                   the breaker admits? else skip the model (CircuitOpen
                                 when nothing is left); a pool only leaves out the
                                 projects whose breaker refuses
        _join_line               without a gate: wait behind other calls' 429s
        _reserve                 a permit from the quota gate (day spent: park; wait
                                 too long: fall back)
        _choose_project          a pool: the chosen project's breaker decides
        _wait_for                wait permit.wait on the clock, then confirm the
                                 permit (wait again while it asks for more)
        _send                    one attempt
        _end_attempt             settle or tally, tell the breaker
        success                  budget refill, return
        _after_failure           diagnose, decide_after_failure: Retry (spends from
                                 the model's retry budget, _back_off) / FallBack / Fail

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
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from gemini_guard.call.effects import (
    Admit,
    AttemptPlan,
    CallInfo,
    Confirm,
    Effect,
    Outcome,
    Record,
    Release,
    Reserve,
    Send,
    Settle,
    Steps,
    Tally,
    Wait,
)
from gemini_guard.call.failure import CallRecord, failure
from gemini_guard.call.ports import BreakerStore, NoQuota, Permit, QuotaGate, TallyingGate
from gemini_guard.clock import Clock
from gemini_guard.diagnosis import Category, Diagnosis, diagnose
from gemini_guard.errors import Attempt, DailyQuotaExhausted, QuotaWait
from gemini_guard.policies import (
    Admission,
    Breaker,
    BreakerPolicy,
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
from gemini_guard.secrets import scrubbed
from gemini_guard.telemetry import (
    AttemptFailed,
    AttemptStarted,
    BreakerStateChanged,
    CallSucceeded,
    FallbackTaken,
    ModelSkipped,
    QuotaWaited,
    RetryScheduled,
    Telemetry,
)

__all__ = ["Engine"]

T = TypeVar("T")

_log = logging.getLogger("gemini_guard")

# A stage: a sub-generator of effects that returns what it decided.
Stage = Generator[Effect, Outcome[Any] | None, T]

_NO_PROJECTS: frozenset[str] = frozenset()

# The admission of a pool's attempt before the pool has chosen its project (the
# project's breaker is asked then). Compared by identity.
_POOL_PENDING = Admission(True, "closed")


def _per_day(diagnosis: Diagnosis) -> bool:
    quota = diagnosis.quota
    return diagnosis.category is Category.DAILY_QUOTA_EXHAUSTED or (
        diagnosis.category is Category.RATE_LIMITED and quota is not None and quota.scope == "day"
    )


def _admitted(outcome: Outcome[Any] | None) -> tuple[Admission, BreakerTransition | None]:
    """What an `Admit` effect came to (a store error is raised)."""
    assert outcome is not None
    if outcome.error is not None:
        raise outcome.error
    value = outcome.value
    assert isinstance(value, tuple)
    return value


def _estimated(call: _Call[Any]) -> int:
    """The call's input tokens, estimated once, when first needed."""
    tokens = call.tokens
    if not isinstance(tokens, int):
        tokens = call.tokens = tokens()
    return tokens


class _Call(CallRecord, Generic[T]):
    """One call: its record, plus what it was asked and what holds for all its turns."""

    __slots__ = (
        "chain",
        "deadline_at",
        "input_tokens_of",
        "line_up",
        "listening",
        "metered_as",
        "requests",
        "shared",
        "shrinks",
        "tallying",
        "tokens",
        "use_quota",
    )

    def __init__(self, call_id: str, started: float, chain: tuple[str, ...]) -> None:
        super().__init__(call_id, started)
        self.chain = chain
        self.tokens: int | Callable[[], int] = 0  # see `_estimated`
        self.requests = 1  # what the server counts the call as (a batch: its items)
        self.metered_as: str | None = None
        self.input_tokens_of: Callable[[T], int | None] = _no_count
        self.use_quota = False
        self.line_up = False
        self.listening = False
        self.shared = False
        self.shrinks = True  # see `Engine.steps`
        self.tallying: TallyingGate | None = None
        self.deadline_at: float | None = None


def _no_count(value: object) -> int | None:
    return None


class _Turn:
    """One model's turn in a call: its attempts so far and the current one."""

    __slots__ = (
        "admission",
        "attempt_no",
        "began",
        "breaker",
        "exclude",
        "failures",
        "index",
        "key",
        "meter",
        "model",
        "project",
        "refused_here",
        "shrink_next",
        "shrunk",
        "waited",
    )

    def __init__(
        self, index: int, model: str, key: str, breaker: Breaker, meter: str | None = None
    ) -> None:
        self.index = index
        self.model = model  # what is sent
        self.meter = model if meter is None else meter  # whose quota and breaker
        self.key = key
        # The breaker the attempt answers to (a pool: the chosen project's, kept
        # for the turn's next attempts until another project is chosen).
        self.breaker = breaker
        self.admission = _POOL_PENDING
        self.failures = 0
        self.shrunk = False
        self.shrink_next = False
        self.waited = 0.0  # clock seconds waited before the current attempt
        # A pool: projects to leave out of the choice, and those whose breaker
        # refused a permit during this turn.
        self.exclude = _NO_PROJECTS
        self.refused_here: set[str] = set()
        self.attempt_no = 0
        self.began = 0.0
        self.project: str | None = None


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

    # -- lanes: the key and the breaker of a model (of a pool's project) -------------

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

    def _pool_lane(self, project: str, model: str) -> Breaker:
        lane = self._lanes.get((project, model))
        if lane is None:
            lane = self._new_lane((project, model), f"{project}/{model}")
        return lane[1]

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

    def _usable(self, model: str) -> bool:
        now = self.clock.time()
        if self.parking.parked_until(self._lane(model)[0], now) is not None:
            return False
        if self.pooled and self._pool_projects:
            refused, _ = self._pool_refusals(model, now)
            return len(refused) < len(self._pool_projects)
        return self.breaker(model).peek(now).allowed

    def _next_usable(self, chain: tuple[str, ...], index: int) -> str | None:
        return next((m for m in chain[index + 1 :] if self._usable(m)), None)

    # -- one call ---------------------------------------------------------------------

    def steps(
        self,
        chain: tuple[str, ...],
        *,
        tokens: int | Callable[[], int],
        input_tokens_of: Callable[[T], int | None],
        use_quota: bool = True,
        requests: int = 1,
        metered_as: str | None = None,
        shrinks: bool = True,
    ) -> Steps[T]:
        """The logic of one call over `chain`, as a generator of effects (see module doc).
        `tokens`: the input tokens the call reserves, or a function estimating them,
        called only when they are needed (a reservation, or the tally of an attempt
        whose answer did not count them): on `tier="auto"` before any limit is known
        nothing is reserved and a good answer counts its own tokens, so the estimate
        is never made. `requests`: how many requests the server counts the call as (a batch of
        embeddings: one per item); the quota gate reserves that many. `metered_as`:
        the name of the quota, breaker and parking a one-model call answers to when
        it is not its model's (countTokens: `tiers.count_tokens_quota(model)`), so
        that the model's generation quota neither delays nor blocks it. `shrinks`: a
        retry after a deadline may ask for less (the policy's `shrink_on_deadline`);
        False for a call with no generation settings to shrink, retried as it was."""
        if metered_as is not None and len(chain) != 1:
            raise ValueError("metered_as= is for a call of one model")
        if not chain:
            raise ValueError("a guarded call needs at least one model")
        clock = self.clock
        call: _Call[T] = _Call(f"{self._id_prefix}{next(self._ids):08x}", clock.monotonic(), chain)
        call.tokens = tokens
        call.requests = requests
        call.metered_as = metered_as
        call.shrinks = shrinks
        call.input_tokens_of = input_tokens_of
        # No gate, nothing to reserve: skip the round trips through the driver.
        call.use_quota = use_quota and self.pacing
        # Who keeps the line of calls waiting on a model's per-minute quota: the
        # quota gate when one paces (its FIFO booking), else `RetrySlots`, which
        # remembers the server's "retry in d" and spaces the waiters. Never both:
        # they would each add their own spacing and every caller would wait twice.
        call.line_up = not self.pacing
        # Build the events of the successful path only when a sink wants them.
        call.listening = self.telemetry.listening()
        call.tallying = self._tallying if call.use_quota else None
        call.shared = self._shared_breakers
        if self.retry.deadline is not None:
            call.deadline_at = call.started + self.retry.deadline

        for index, model in enumerate(chain):
            answer = yield from self._turn(call, index, model)
            if answer is not None:
                return answer
            if call.final is not None:
                break
        raise failure(call, chain, clock=clock, telemetry=self.telemetry) from scrubbed(
            call.last_error
        )

    def _turn(self, call: _Call[T], index: int, model: str) -> Stage[tuple[T, CallInfo] | None]:
        """One model's turn: its attempts until one answers (returned), or until the
        call moves on to the next model (None; `call.final` set: the call stops)."""
        clock = self.clock
        meter = call.metered_as or model
        key, breaker = self._lane(meter)
        parked = self.parking.parked_until(key, clock.time())
        if parked is not None:
            self._skip_parked(call, model, parked)
            return None
        turn = _Turn(index, model, key, breaker, meter)
        while True:
            # One reading of each clock per step until something is yielded.
            mono = clock.monotonic()
            if call.deadline_at is not None and mono >= call.deadline_at:
                call.final = Fail("exhausted", "the call's deadline has passed")
                return None
            asked = None
            if call.shared and not self._pool_projects:
                # A breaker in a shared store is asked through the driver (I/O).
                asked = _admitted((yield Admit(turn.breaker, clock.time())))
            if not self._admit(call, turn, asked):
                return None
            if turn.failures == 0 and call.line_up:
                yield from self._join_line(call, turn, mono)

            permit: Permit | None = None
            tallying = call.tallying
            paced = call.use_quota and (tallying is None or tallying.paces(self.project, meter))
            if paced:
                permit = yield from self._reserve(call, turn)
                if permit is None:
                    return None
                if turn.admission is _POOL_PENDING and not (
                    yield from self._choose_project(call, turn, permit)
                ):
                    continue
                if not (yield from self._wait_for(call, turn, permit)):
                    return None

            # While this call waited (backoff, quota), another one may have
            # learned that the model's day is spent: do not send into that.
            # (Not waited: the check at the top of the model was just made.)
            if paced or turn.waited or turn.failures:
                parked = self.parking.parked_until(key, clock.time())
                if parked is not None:
                    yield from self._unsent(call, turn, permit)
                    self._skip_parked(call, model, parked)
                    return None

            sent = yield from self._send(call, turn, permit)
            if sent.error is None:
                value: T = sent.value  # type: ignore[assignment]
                used = call.input_tokens_of(value)
                yield from self._end_attempt(call, turn, permit, used, None)
                return self._succeeded(call, turn, value, used)
            if not (yield from self._after_failure(call, turn, permit, sent.error)):
                return None

    # -- the stages -------------------------------------------------------------------

    def _admit(
        self,
        call: _Call[T],
        turn: _Turn,
        asked: tuple[Admission, BreakerTransition | None] | None,
    ) -> bool:
        """Whether the model's breaker lets an attempt through (False: the model is
        skipped). `asked`: a shared-store breaker's answer, fetched by the caller. A
        pool only works out which projects to leave out of its choice: each
        project's breaker is asked once the pool has chosen one."""
        now = self.clock.time()
        model = turn.model
        if self.pooled and self._pool_projects:
            refused, soonest = self._pool_refusals(turn.meter, now)
            turn.exclude = refused | turn.refused_here
            if len(turn.exclude) >= len(self._pool_projects):
                self._skip_open(call, model, soonest)
                return False
            turn.admission = _POOL_PENDING
            return True
        admission, move = asked if asked is not None else turn.breaker.admit(now)
        self._emit_move(call, model, move)
        if not admission.allowed:
            self._skip_open(call, model, admission.retry_at)
            return False
        turn.admission = admission
        return True

    def _join_line(self, call: _Call[T], turn: _Turn, mono: float) -> Stage[None]:
        """Others are waiting for this model's quota to reopen: join the line rather
        than draw a 429 and push them back."""
        line = self.retry_slots.join(turn.key, now=mono)
        if line > 0 and (call.deadline_at is None or mono + line < call.deadline_at):
            self._emit_wait(call, turn.model, line)
            yield Wait(line)
            turn.waited += line

    def _reserve(self, call: _Call[T], turn: _Turn) -> Stage[Permit | None]:
        """A permit from the quota gate, or None: the model's turn is over (its day is
        spent, or its wait is too long)."""
        model = turn.model
        tokens = _estimated(call)
        reserved = yield Reserve(self.project, turn.meter, tokens, turn.exclude, call.requests)
        assert reserved is not None
        error = reserved.error
        if error is None:
            permit = reserved.value
            assert isinstance(permit, Permit)
            return permit
        if isinstance(error, DailyQuotaExhausted):
            call.last, call.last_model = error.diagnosis, model
            if turn.exclude:
                # Every project the pool could choose is spent for the day, but
                # others are only broken: not parked till midnight.
                _, soonest = self._pool_refusals(turn.meter, self.clock.time())
                self._skip_open(call, model, soonest)
                return None
            self.parking.park(turn.key, error.reset_at)
            self._skip_parked(call, model, error.reset_at, reason="quota")
            return None
        if isinstance(error, QuotaWait):
            call.last, call.last_model = error.diagnosis, model
            nxt = self._next_usable(call.chain, turn.index)
            if nxt is not None:
                self._fallback_event(call, model, error.diagnosis, "quota wait too long", nxt)
                return None
            call.final = Fail("quota_wait", str(error), wait=error.wait)
            return None
        raise error

    def _choose_project(self, call: _Call[T], turn: _Turn, permit: Permit) -> Stage[bool]:
        """The pool chose a project: now its breaker for the model decides (and takes
        a probe slot when half-open). False: it refuses; ask the pool again without
        that project."""
        breaker = turn.breaker = self._pool_lane(permit.project, turn.meter)
        if call.shared:
            asked = yield Admit(breaker, self.clock.time())
            if asked is not None and asked.error is not None:
                yield Settle(permit, sent=False)
            admission, move = _admitted(asked)
        else:
            admission, move = breaker.admit(self.clock.time())
        self._emit_move(call, turn.model, move, permit.project)
        if not admission.allowed:
            yield Settle(permit, sent=False)
            turn.refused_here.add(permit.project)
            return False
        turn.admission = admission
        return True

    def _wait_for(self, call: _Call[T], turn: _Turn, permit: Permit) -> Stage[bool]:
        """Wait out the permit, then confirm it just before sending (a permit is a
        plan), waiting again as long as the gate re-plans it later. False: the wait
        would overrun the call's deadline (`call.final` is set)."""
        if permit.wait > 0 and not (yield from self._wait_out(call, turn, permit, permit.wait)):
            return False
        while True:
            confirmed = yield Confirm(permit)
            assert confirmed is not None
            if confirmed.error is not None:
                yield Settle(permit, sent=False)
                raise confirmed.error
            extra = float(confirmed.value or 0.0)
            if not extra > 0.0:
                return True
            if not (yield from self._wait_out(call, turn, permit, extra)):
                return False

    def _wait_out(self, call: _Call[T], turn: _Turn, permit: Permit, wait: float) -> Stage[bool]:
        deadline_at = call.deadline_at
        if deadline_at is not None and self.clock.monotonic() + wait >= deadline_at:
            yield Settle(permit, sent=False)
            call.final = Fail("quota_wait", "the quota wait would overrun the deadline", wait=wait)
            return False
        self._emit_wait(call, turn.model, wait)
        yield Wait(wait)
        turn.waited += wait
        return True

    def _unsent(self, call: _Call[T], turn: _Turn, permit: Permit | None) -> Stage[None]:
        """The attempt will not be sent after all: give back its permit and its probe."""
        if permit is not None:
            yield Settle(permit, sent=False)
        if turn.admission.probe:
            if call.shared:
                yield Release(turn.breaker)
            else:
                turn.breaker.release_probe()

    def _send(self, call: _Call[T], turn: _Turn, permit: Permit | None) -> Stage[Outcome[Any]]:
        """Send one attempt (within what is left of the call's deadline)."""
        clock = self.clock
        model = turn.model
        call.sent += 1
        turn.attempt_no = call.sent
        timeout = self.retry.attempt_timeout
        turn.began = began = clock.monotonic()
        if call.deadline_at is not None:
            left = max(0.001, call.deadline_at - began)
            timeout = left if timeout is None else min(timeout, left)
        if call.listening:
            self.telemetry.emit(
                AttemptStarted(
                    timestamp=clock.time(),
                    call_id=call.call_id,
                    model=model,
                    attempt=turn.attempt_no,
                    attempt_on_model=turn.failures + 1,
                    probe=turn.admission.probe,
                    shrunk=turn.shrink_next,
                )
            )
        if model not in call.sent_models:
            call.sent_models.append(model)
        turn.project = permit.project if permit is not None else self.project
        plan = AttemptPlan(model, turn.attempt_no, timeout, turn.shrink_next, turn.project)
        sent = yield Send(plan)
        assert sent is not None
        turn.shrink_next = False
        return sent

    def _end_attempt(
        self,
        call: _Call[T],
        turn: _Turn,
        permit: Permit | None,
        used: int | None,
        diagnosis: Diagnosis | None,
    ) -> Stage[BreakerTransition | None]:
        """A sent attempt has ended (`diagnosis` None: it succeeded, using `used` input
        tokens): settle its permit or tally it, and tell its breaker."""
        if permit is not None:
            yield Settle(permit, True, used, diagnosis)
        elif call.tallying is not None:
            tokens = used if used is not None else _estimated(call)
            yield Tally(
                self.project, turn.meter, tokens, used, diagnosis, turn.began, call.requests
            )
        now = self.clock.time()
        if call.shared:
            recorded = yield Record(turn.breaker, now, diagnosis, turn.admission.probe)
            move = None if recorded is None else recorded.value
        else:
            move = turn.breaker.record(now, diagnosis, probe=turn.admission.probe)
        project = permit.project if self.pooled and permit is not None else None
        self._emit_move(call, turn.model, move, project)
        return move

    def _succeeded(
        self, call: _Call[T], turn: _Turn, value: T, used: int | None
    ) -> tuple[T, CallInfo]:
        clock = self.clock
        model = turn.model
        self.budget.record_success(turn.key)
        call.attempts.append(Attempt(model, None, turn.waited, 200, turn.project))
        chain = call.chain
        info = CallInfo(
            call.call_id, model, tuple(call.attempts), clock.monotonic() - call.started, chain[0]
        )
        if call.listening:
            self.telemetry.emit(
                CallSucceeded(
                    timestamp=clock.time(),
                    call_id=call.call_id,
                    model=model,
                    attempts=info.attempt_count,
                    elapsed=info.elapsed,
                    input_tokens=used,
                    requested=chain[0],
                    served_by_requested=model == chain[0],
                )
            )
        return value, info

    def _after_failure(
        self, call: _Call[T], turn: _Turn, permit: Permit | None, error: Exception
    ) -> Stage[bool]:
        """Diagnose a failed attempt and decide: True to try the model again (after
        the backoff), False to end its turn (falling back, or `call.final` set)."""
        clock = self.clock
        model = turn.model
        diagnosis = diagnose(error, now=clock.time())
        call.last_error = error
        move = yield from self._end_attempt(call, turn, permit, None, diagnosis)
        turn.failures += 1
        call.last, call.last_model = diagnosis, model
        call.attempts.append(
            Attempt(model, diagnosis.category, turn.waited, diagnosis.http_status, turn.project)
        )
        turn.waited = 0.0
        self.telemetry.emit(
            AttemptFailed(
                timestamp=clock.time(),
                call_id=call.call_id,
                model=model,
                http_status=diagnosis.http_status,
                grpc_status=diagnosis.grpc_status,
                category=str(diagnosis.category),
                message=diagnosis.message,
                attempt=turn.attempt_no,
                elapsed=clock.monotonic() - turn.began,
            )
        )
        nxt = self._next_usable(call.chain, turn.index)
        # The model's breaker refuses now (this failure opened it, or another
        # call's did): move on at once instead of waiting out a backoff only
        # to be refused. A shared store is not read again here (that is I/O);
        # its breaker is asked at the next admission. In a pool, one project's
        # breaker is not the model's: the next reservation leaves it out.
        model_open = not self.pooled and (
            (move is not None and move.new == "open")
            or (not call.shared and not turn.breaker.peek(clock.time()).allowed)
        )
        decision = decide_after_failure(
            diagnosis,
            # A call with nothing to shrink is as one whose smaller retry is spent.
            progress=ModelProgress(failures=turn.failures, shrunk=turn.shrunk or not call.shrinks),
            policy=self.retry,
            has_next=nxt is not None,
            budget_allows=self.budget.allows_retry(turn.key),
            now=clock.monotonic(),
            now_wall=clock.time(),
            deadline_at=call.deadline_at,
            rng=self.rng,
            model_open=model_open,
        )
        if self.pooled and _per_day(diagnosis) and not isinstance(decision, Retry):
            # One project's day is spent, not the model's: the settle above told
            # the pool, whose next reserve picks another project (or raises
            # DailyQuotaExhausted when every project is spent: then park).
            decision = Retry(0.0, "another project of the pool")
        if isinstance(decision, Retry):
            yield from self._back_off(call, turn, diagnosis, decision)
            return True
        if isinstance(decision, FallBack):
            if decision.park_until is not None:
                self.parking.park(turn.key, decision.park_until)
                call.parked.append(decision.park_until)
            if decision.warning is not None:
                _log.warning("%s: %s", model, decision.warning)
            self._fallback_event(
                call,
                model,
                diagnosis,
                decision.reason,
                nxt,
                warning=decision.warning,
                park_until=decision.park_until,
            )
            return False
        if decision.reset_at is not None:
            self.parking.park(turn.key, decision.reset_at)
        call.final = decision
        return False

    def _back_off(
        self, call: _Call[T], turn: _Turn, diagnosis: Diagnosis, decision: Retry
    ) -> Stage[None]:
        """Wait before trying the model again (in the line of calls retrying it,
        when no quota gate keeps that line)."""
        clock = self.clock
        if spends_budget(diagnosis):
            self.budget.record_retry(turn.key)
        delay = decision.delay
        if call.line_up:
            delay = self.retry_slots.schedule(
                turn.key,
                now=clock.monotonic(),
                delay=decision.delay,
                spacing=retry_spacing(diagnosis),
            )
        if delay != decision.delay:
            deadline_at = call.deadline_at
            if deadline_at is not None and clock.monotonic() + delay >= deadline_at:
                delay = decision.delay  # keep the deadline rather than the line
            decision = Retry(delay, decision.reason, decision.shrink)
        self.telemetry.emit(
            RetryScheduled(
                timestamp=clock.time(),
                call_id=call.call_id,
                model=turn.model,
                http_status=diagnosis.http_status,
                grpc_status=diagnosis.grpc_status,
                category=str(diagnosis.category),
                message=diagnosis.message,
                attempt=turn.attempt_no,
                reason=decision.reason,
                delay=decision.delay,
                shrink=decision.shrink,
            )
        )
        yield Wait(decision.delay)
        turn.waited = decision.delay
        turn.shrink_next = decision.shrink
        turn.shrunk = turn.shrunk or decision.shrink

    # -- what the call tells (telemetry) ------------------------------------------------

    def _skip_parked(
        self, call: _Call[T], model: str, until: float, *, reason: str = "parked"
    ) -> None:
        call.parked.append(until)
        call.attempts.append(
            Attempt(model, Category.DAILY_QUOTA_EXHAUSTED, project=self.project, sent=False)
        )
        self.telemetry.emit(
            ModelSkipped(
                timestamp=self.clock.time(),
                call_id=call.call_id,
                model=model,
                reason=reason,
                until=until,
            )
        )

    def _skip_open(self, call: _Call[T], model: str, until: float | None) -> None:
        call.breaker_until.append(until if until is not None else self.clock.time())
        call.attempts.append(Attempt(model, None, project=self.project, sent=False))
        self.telemetry.emit(
            ModelSkipped(
                timestamp=self.clock.time(),
                call_id=call.call_id,
                model=model,
                reason="breaker_open",
                until=until,
            )
        )

    def _emit_wait(self, call: _Call[T], model: str, wait: float) -> None:
        self.telemetry.emit(
            QuotaWaited(
                timestamp=self.clock.time(),
                call_id=call.call_id,
                model=model,
                project=self.project,
                wait=wait,
            )
        )

    def _emit_move(
        self,
        call: _Call[T],
        model: str,
        move: BreakerTransition | None,
        project: str | None = None,
    ) -> None:
        if move is None:
            return
        self.telemetry.emit(
            BreakerStateChanged(
                timestamp=self.clock.time(),
                call_id=call.call_id,
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

    def _fallback_event(
        self,
        call: _Call[T],
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
                call_id=call.call_id,
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
