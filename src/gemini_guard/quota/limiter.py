"""QuotaLimiter: the Guard's quota gate over a ledger store.

`reserve` books the earliest slot that keeps every sliding window under the limits
and says how long to wait before sending (FIFO: an earlier caller never waits longer
than a later one). `settle` records how the attempt ended — see `settle` for why the
slot is recorded at response time — and learns from 429s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from gemini_guard.call.ports import Permit
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.diagnosis import Category
from gemini_guard.errors import ConfigError, DailyQuotaExhausted, QuotaWait, RequestRejected
from gemini_guard.quota import _diagnoses
from gemini_guard.quota.adaptive import AdaptiveLimits, AdaptivePolicy
from gemini_guard.quota.events import Metric, PhantomRateLimit
from gemini_guard.quota.evidence import Judgement, RateEvidence
from gemini_guard.quota.ledger import NO_LIMITS, Budget, Granted, Refused, day_index
from gemini_guard.quota.limits import LimitPolicy, normalize_model
from gemini_guard.quota.shared_levels import MemoryLevelStore, open_level_store
from gemini_guard.quota.stores import open_store
from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, QuotaStore, Reservation
from gemini_guard.tiers import Limits

if TYPE_CHECKING:
    from gemini_guard.diagnosis import Diagnosis

__all__ = ["QuotaLimiter"]

_log = logging.getLogger("gemini_guard")

_METRICS: tuple[Metric, ...] = ("rpm", "tpm", "rpd", "tpd")
_CACHE_SIZE = 10_000  # bounded: a cache, not a registry
_new_tuple = tuple.__new__


# Tallied attempts are written to the store in batches: at most this many, and
# none kept longer than this many clock seconds (see `QuotaLimiter.tally`).
_TALLY_BATCH = 32
_TALLY_DELAY = 1.0
# A tallied attempt waiting to be written: project, model, input tokens, the wall
# time of its answer, the monotonic time it was sent.
_Tallied = tuple[str, str, int, float, float | None]


def _counted_tokens(estimated: int, counted: int | None) -> int:
    """The server's count of a sent request's input tokens when it gave one."""
    if counted is None:
        return estimated
    if counted < 0:
        raise ConfigError(f"input_tokens={counted!r} must be >= 0 (usageMetadata)")
    return counted


class _Lane:
    """What `reserve` needs of one (project, model) as the caller spells it, worked
    out once: the ledger key, the hard token limit and, while nothing has been
    learned about the key, its (then constant) budget. Dropped whenever the limits
    change (something learned, a tier revealed)."""

    __slots__ = ("budget", "hard_tpm", "key", "paces")

    def __init__(self, key: QuotaKey, hard_tpm: int | None, budget: Budget | None) -> None:
        self.key = key
        self.hard_tpm = hard_tpm
        self.budget = budget  # None: adaptive levels apply, recompute on every call
        # Anything to pace by? (False: no limit known; see QuotaLimiter.paces.)
        self.paces = budget is None or not budget.unlimited


class QuotaLimiter:
    """Paces requests per (project, model) under RPM, input TPM, RPD and TPD.

    - `store`: a `QuotaStore` or its URL (`memory://`, `sqlite:///path`,
      `redis://host:port/db`); processes sharing a store share the quotas.
    - `tier`: "free", "tier1", "tier2", "tier3", or "auto" (pace only by what the
      server reveals); `project_tiers` sets it per project; `limits` overrides
      figures per model, e.g. `{"gemini-2.5-pro": {"rpm": 2}}`; `project_limits`
      overrides them for one project, e.g. `{"team-a": {"gemini-2.5-pro": {"rpm": 60}}}`
      (provisioned throughput is bought per project).
    - `max_wait`: the longest a caller may be asked to wait (None: no bound);
      beyond it, `reserve` raises QuotaWait and books nothing.
    - `latency_allowance`: seconds an in-flight request may take to answer before
      its slot is assumed over; None learns it from the answers.
    - `adaptive`: learn the enforced limits from 429s (False: trust the table); what
      is learned is shared through the store (`AdaptivePolicy(shared=False)`: not).
    - `on_event`: called with LimitLearned, LimitRecovered, StoreDegraded, ...
    """

    def __init__(
        self,
        *,
        store: QuotaStore | str = "memory://",
        clock: Clock | None = None,
        tier: str = "auto",
        project_tiers: dict[str, str] | None = None,
        limits: dict[str, Limits | dict[str, object]] | None = None,
        project_limits: Mapping[str, Mapping[str, Limits | Mapping[str, object]]] | None = None,
        max_wait: float | dt.timedelta | None = None,
        latency_allowance: float | dt.timedelta | None = None,
        adaptive: bool | AdaptivePolicy = True,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._policy = LimitPolicy.build(
            tier=tier, project_tiers=project_tiers, overrides=limits, project_limits=project_limits
        )
        self._on_event = on_event
        self._store: QuotaStore = (
            open_store(store, on_event=on_event) if isinstance(store, str) else store
        )
        self._max_wait = _seconds(max_wait, "max_wait")
        self._fixed_allowance = _seconds(latency_allowance, "latency_allowance")
        # Smoothed answer latency and its mean deviation (as TCP estimates its RTO).
        self._latency: float | None = None
        self._latency_dev = 0.0
        if adaptive is False:
            self._adaptive: AdaptiveLimits | None = None
        else:
            policy = adaptive if isinstance(adaptive, AdaptivePolicy) else AdaptivePolicy()
            # What one process learns holds for the project: keep it beside the ledger.
            shared = (
                open_level_store(self._store, url=store if isinstance(store, str) else None)
                if policy.shared
                else None
            )
            self._adaptive = AdaptiveLimits(policy, on_event=on_event, shared=shared)
        # What this process's answers say about bare 429s (a limit, or noise).
        self._evidence: RateEvidence | None = None if adaptive is False else RateEvidence()
        self._revealed_tier: dict[str, Literal["free"]] = {}
        self._configured: dict[QuotaKey, Limits] = {}
        self._budgets: dict[QuotaKey, Budget] = {}
        self._lanes: dict[tuple[str, str], _Lane] = {}
        # When each in-flight slot was confirmed (really sent), for the latency estimate.
        self._sent_at: dict[str, float] = {}
        # Slot ids unique across processes and hosts sharing a store.
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count()
        # Attempts sent without a permit (see `tally`) not yet written to the store.
        self._tallies: list[_Tallied] = []
        self._tally_lock = threading.Lock()

    @property
    def store(self) -> QuotaStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    def __repr__(self) -> str:
        return f"QuotaLimiter(store={self._store.url!r}, tier={self._policy.tier!r})"

    def close(self) -> None:
        self._flush_tallies()
        self._store.close()
        if self._adaptive is not None:
            self._adaptive.close()

    async def aclose(self) -> None:
        await self._aflush_tallies()
        await self._store.aclose()
        if self._adaptive is not None:
            self._adaptive.close()

    # -- limits ---------------------------------------------------------------------

    def configured(self, project: str, model: str) -> Limits:
        """The configured limits (the tier the server revealed, for an "auto" project)."""
        key = QuotaKey(project, normalize_model(model))
        return self._configured_of(key)

    def _configured_of(self, key: QuotaKey) -> Limits:
        limits = self._configured.get(key)
        if limits is None:
            limits = self._policy.configured(
                key.project, key.model, tier=self._revealed_tier.get(key.project)
            )
            self._configured[key] = limits
        return limits

    def budget(self, project: str, model: str) -> Budget:
        """The limits paced by right now (configured, then learned)."""
        return self._budget_of(QuotaKey(project, normalize_model(model)))

    def _budget_of(self, key: QuotaKey) -> Budget:
        budget = self._budgets.get(key)
        if budget is not None:
            return budget
        self._follow(key)
        limits = self._configured_of(key)
        adaptive = self._adaptive
        if adaptive is None or not adaptive.has_levels(key):
            budget = Budget(
                requests=limits.rpm,
                tokens=limits.tpm,
                day_requests=limits.rpd,
                day_tokens=limits.tpd,
            )
            self._budgets[key] = budget  # stable until something is learned
            return budget
        now, wall = self._clock.monotonic(), self._clock.time()
        # Recovering limits change with time: recompute on every call.
        return Budget(
            requests=adaptive.effective(key, "rpm", limits.rpm, now=now, wall=wall),
            tokens=adaptive.effective(key, "tpm", limits.tpm, now=now, wall=wall),
            day_requests=adaptive.effective(key, "rpd", limits.rpd, now=now, wall=wall),
            day_tokens=adaptive.effective(key, "tpd", limits.tpd, now=now, wall=wall),
        )

    def _hard_tpm(self, key: QuotaKey) -> int | None:
        configured = self._configured_of(key).tpm
        if self._adaptive is None:
            return configured
        return self._adaptive.ceiling(key, "tpm", configured)

    def _tier_word(self, key: QuotaKey) -> Literal["free", "paid"]:
        tier = self._revealed_tier.get(key.project) or self._policy.tier_of(key.project)
        return "free" if tier == "free" else "paid"

    # -- reserve --------------------------------------------------------------------

    def _lane(self, project: str, model: str) -> _Lane:
        if not isinstance(project, str) or not project:
            raise ConfigError(f"project={project!r}: name the Google Cloud project")
        key = QuotaKey(project, normalize_model(model))
        self._follow(key)
        adaptive = self._adaptive
        static = adaptive is None or not adaptive.has_levels(key)
        lane = _Lane(key, self._hard_tpm(key), self._budget_of(key) if static else None)
        if len(self._lanes) >= _CACHE_SIZE:
            self._lanes.clear()
        self._lanes[(project, model)] = lane
        return lane

    def _check(self, project: str, model: str, tokens: int) -> tuple[QuotaKey, Budget]:
        """Validate one request and return its ledger and the budget to pace it by."""
        if type(tokens) is not int and (not isinstance(tokens, int) or isinstance(tokens, bool)):
            raise ConfigError(f"tokens={tokens!r}: pass the request's input tokens, an int >= 0")
        if tokens < 0:
            raise ConfigError(f"tokens={tokens!r}: pass the request's input tokens, an int >= 0")
        lane = self._lanes.get((project, model))
        if lane is None:
            lane = self._lane(project, model)
        key = lane.key
        hard_tpm = lane.hard_tpm
        if hard_tpm is not None and tokens > hard_tpm:
            raise RequestRejected(
                f"{tokens} input tokens can never fit in {key.model}'s "
                f"{hard_tpm} input tokens per minute",
                diagnosis=_diagnoses.too_large(
                    model=key.model, tokens=tokens, tpm=hard_tpm, tier=self._tier_word(key)
                ),
            )
        budget = lane.budget
        if budget is None:
            budget = self._budget_of(key)
            adaptive = self._adaptive
            if adaptive is None or not adaptive.has_levels(key):
                lane.budget = budget  # recovered fully: constant again
                lane.paces = not budget.unlimited
        return key, budget

    def _allowance(self) -> float:
        if self._fixed_allowance is not None:
            return self._fixed_allowance
        if self._latency is None:
            return 0.0
        return self._latency + 4.0 * self._latency_dev

    def _refuse(self, key: QuotaKey, budget: Budget, now: float, result: Refused) -> Exception:
        if result.why == "day":
            return DailyQuotaExhausted(
                f"the per-day quota of {key.model} in project {key.project} is spent "
                f"({result.detail}); it resets at midnight Pacific time",
                diagnosis=_diagnoses.day_spent(
                    model=key.model,
                    project=key.project,
                    detail=result.detail,
                    limit=budget.day_requests,
                    tier=self._tier_word(key),
                ),
                reset_at=result.until,
            )
        wait = result.until - now
        max_wait = self._max_wait if self._max_wait is not None else 0.0
        return QuotaWait(
            f"{key.model} in project {key.project} has no quota for {wait:.1f}s, "
            f"longer than max_wait={max_wait:g}s",
            diagnosis=_diagnoses.wait_too_long(
                model=key.model, project=key.project, wait=wait, max_wait=max_wait
            ),
            wait=wait,
        )

    def _permit(
        self,
        key: QuotaKey,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        result: Granted | Refused,
    ) -> Permit:
        if not isinstance(result, Granted):
            raise self._refuse(key, budget, now, result)
        start = result.start
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (same value).
        reservation = _new_tuple(
            Reservation,
            (
                key,
                result.slot_id,
                start,
                start + allowance,
                tokens,
                result.day,
                result.origin,
                self._clock.monotonic(),
            ),
        )
        wait = start - now
        # Positional: the hot path; Permit(project, model, tokens, wait, ticket).
        return Permit(key.project, key.model, tokens, wait if wait > 0.0 else 0.0, reservation)

    def reserve(
        self, *, project: str, model: str, tokens: int, requests: int = 1, now_only: bool = False
    ) -> Permit:
        """Book the earliest slot for one request of `tokens` input tokens.

        Returns a Permit whose `wait` is how long to wait before sending; then call
        `confirm` just before sending. Raises RequestRejected (tokens over the
        per-minute token limit: it can never fit), DailyQuotaExhausted (the Pacific
        day's quota is spent; `.reset_at`) or QuotaWait (the wait would exceed
        `max_wait`, or any wait at all with `now_only`; nothing is booked).

        `requests`: how many requests the server counts the call as (a batch of
        embeddings counts each item): that many slots are booked, and the permit
        waits for the last of them (`now_only` is for one request).
        """
        if requests != 1:
            return self._reserve_items(project, model, tokens, requests)
        if self._tallies:  # the ledger must hold every attempt before it books
            self._flush_tallies()
        lane = self._lanes.get((project, model))
        if (
            lane is None
            or lane.budget is None
            or type(tokens) is not int
            or tokens < 0
            or (lane.hard_tpm is not None and tokens > lane.hard_tpm)
        ):
            key, budget = self._check(project, model, tokens)  # validates, raises
        else:  # the hot path: a known ledger, a plain token count that fits
            key, budget = lane.key, lane.budget
        now = self._clock.time()
        fixed = self._fixed_allowance
        allowance = fixed if fixed is not None else self._allowance()
        max_wait = self._max_wait
        result = self._store.acquire(
            key,
            slot_id=f"{self._id_prefix}-{next(self._ids):x}",
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=now if now_only else None if max_wait is None else now + max_wait,
        )
        return self._permit(key, budget, tokens, now, allowance, result)

    async def areserve(
        self, *, project: str, model: str, tokens: int, requests: int = 1, now_only: bool = False
    ) -> Permit:
        """`reserve` for asyncio callers."""
        if requests != 1:
            return await self._areserve_items(project, model, tokens, requests)
        if self._tallies:
            await self._aflush_tallies()
        lane = self._lanes.get((project, model))
        if (
            lane is None
            or lane.budget is None
            or type(tokens) is not int
            or tokens < 0
            or (lane.hard_tpm is not None and tokens > lane.hard_tpm)
        ):
            key, budget = self._check(project, model, tokens)  # validates, raises
        else:  # the same hot path as `reserve`
            key, budget = lane.key, lane.budget
        now = self._clock.time()
        fixed = self._fixed_allowance
        allowance = fixed if fixed is not None else self._allowance()
        max_wait = self._max_wait
        result = await self._store.aacquire(
            key,
            slot_id=f"{self._id_prefix}-{next(self._ids):x}",
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=now if now_only else None if max_wait is None else now + max_wait,
        )
        return self._permit(key, budget, tokens, now, allowance, result)

    # -- a call counted as several requests -------------------------------------------

    def _check_items(self, project: str, model: str, tokens: int, requests: object) -> None:
        if type(requests) is not int or requests < 1:
            raise ConfigError(
                f"requests={requests!r}: pass how many requests the call counts as, an int >= 1"
            )
        key, _ = self._check(project, model, tokens)
        configured = self._configured_of(key).rpm
        rpm = (
            configured if self._adaptive is None else self._adaptive.ceiling(key, "rpm", configured)
        )
        if rpm is not None and requests > rpm:
            raise RequestRejected(
                f"{requests} items count as {requests} requests, more than {key.model}'s "
                f"{rpm} requests per minute: send at most {rpm} items per call",
                diagnosis=_diagnoses.too_many_items(
                    model=key.model, items=requests, rpm=rpm, tier=self._tier_word(key)
                ),
            )

    def _reserve_items(self, project: str, model: str, tokens: int, requests: int) -> Permit:
        """One slot per request the call counts as (its tokens on the first): the
        ledger's rule then holds for every item, with no change to the stores."""
        self._check_items(project, model, tokens, requests)
        permits: list[Permit] = []
        try:
            for index in range(requests):
                permits.append(
                    self.reserve(project=project, model=model, tokens=0 if index else tokens)
                )
        except BaseException:
            for permit in permits:  # all or nothing: give back what was booked
                self._store.settle(
                    _ticket_of(permit), sent=False, end=self._clock.time(), tokens=permit.tokens
                )
            raise
        return _joined(permits)

    async def _areserve_items(self, project: str, model: str, tokens: int, requests: int) -> Permit:
        self._check_items(project, model, tokens, requests)
        permits: list[Permit] = []
        try:
            for index in range(requests):
                permits.append(
                    await self.areserve(project=project, model=model, tokens=0 if index else tokens)
                )
        except BaseException:
            for permit in permits:
                await self._store.asettle(
                    _ticket_of(permit), sent=False, end=self._clock.time(), tokens=permit.tokens
                )
            raise
        return _joined(permits)

    # -- confirm --------------------------------------------------------------------

    def confirm(self, permit: Permit) -> float:
        """Just before sending: seconds still to wait (0.0: send now).

        A permit is a plan. If requests planned before this one were sent late (a
        starved thread, a paused process), the server counts them later than the
        plan assumed, and sending this one on time could overfill a window. The
        store checks the slot again, atomically, against what was really sent; a
        positive answer re-plans the slot that much later: sleep it, then confirm
        again, until 0.0.
        """
        if isinstance(permit.ticket, _Items):
            return max(
                self._confirm_slot(slot, first=index == 0)
                for index, slot in enumerate(permit.ticket)
            )
        return self._confirm_slot(_ticket_of(permit))

    def _confirm_slot(self, reservation: Reservation, *, first: bool = True) -> float:
        now = self._clock.time()
        wait = self._store.confirm(
            reservation,
            now=now,
            budget=self._budget_of(reservation.key),
            allowance=self._allowance(),
        )
        return self._confirmed(reservation, now, wait, first=first)

    async def aconfirm(self, permit: Permit) -> float:
        """`confirm` for asyncio callers."""
        if isinstance(permit.ticket, _Items):
            waits = [
                await self._aconfirm_slot(slot, first=index == 0)
                for index, slot in enumerate(permit.ticket)
            ]
            return max(waits)
        return await self._aconfirm_slot(_ticket_of(permit))

    async def _aconfirm_slot(self, reservation: Reservation, *, first: bool = True) -> float:
        now = self._clock.time()
        wait = await self._store.aconfirm(
            reservation,
            now=now,
            budget=self._budget_of(reservation.key),
            allowance=self._allowance(),
        )
        return self._confirmed(reservation, now, wait, first=first)

    def _confirmed(
        self, reservation: Reservation, now: float, wait: float, *, first: bool = True
    ) -> float:
        if wait > 0.0:
            return wait
        if not first:
            return 0.0  # an extra item of one call: the call's first slot stands for it
        if len(self._sent_at) >= _CACHE_SIZE:
            self._sent_at.clear()  # permits never settled: forget, do not grow
        self._sent_at[reservation.slot_id] = now
        if self._evidence is not None:
            self._evidence.sent(reservation.key)
        return 0.0

    # -- settle ---------------------------------------------------------------------

    def settle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        """The attempt of `permit` ended; record how.

        Why the slot is recorded at response time: the server counts a request when
        it arrives, an instant the client cannot see — only that it lies between
        sending and the answer. Recording the slot at the answer makes it occupy the
        window until `answer + period`, which covers every instant the server may
        have counted it; recording the send time would let the next request go out
        while the server still counts this one in its window (under a ScaledClock(60)
        emulator, 1 ms of latency is 60 ms of quota time: a few 429s per window).

        `sent=False` releases the slot (the request never left); so does a bare 429
        (no quota named: a phantom or shared-capacity refusal, which counts against no
        quota of the project). A 429 naming a quota keeps its slot: the client cannot
        tell whether the server counted it. `input_tokens` (the server's
        usageMetadata.promptTokenCount) replaces the estimate. A 429 `diagnosis`
        teaches the limiter the enforced limit, when it fits one (see `evidence`).
        """
        if isinstance(permit.ticket, _Items):
            # The extra items end with the call; the first slot carries its tokens
            # and everything learned from its answer.
            first, *rest = permit.ticket
            for slot in rest:
                self._store.settle(
                    slot, sent=sent and not _refused(diagnosis), end=self._clock.time(), tokens=0
                )
            permit = Permit(permit.project, permit.model, permit.tokens, permit.wait, first)
        ticket = _ticket_of(permit)
        wall = self._clock.time()
        tokens = self._settled_tokens(ticket, sent, input_tokens)
        self._store.settle(ticket, sent=sent and not _refused(diagnosis), end=wall, tokens=tokens)
        confirmed_at = self._observe(ticket, sent, wall)
        if diagnosis is not None:
            day = self._learn(ticket, diagnosis, wall, confirmed_at)
            if day is not None:
                self._store.mark_day_spent(ticket.key, day=day)
        elif sent:
            self._succeeded(ticket, wall, confirmed_at)
        self._refresh_levels(wall)

    async def asettle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        """`settle` for asyncio callers."""
        if isinstance(permit.ticket, _Items):
            first, *rest = permit.ticket
            for slot in rest:
                await self._store.asettle(
                    slot, sent=sent and not _refused(diagnosis), end=self._clock.time(), tokens=0
                )
            permit = Permit(permit.project, permit.model, permit.tokens, permit.wait, first)
        ticket = _ticket_of(permit)
        wall = self._clock.time()
        tokens = self._settled_tokens(ticket, sent, input_tokens)
        await self._store.asettle(
            ticket, sent=sent and not _refused(diagnosis), end=wall, tokens=tokens
        )
        confirmed_at = self._observe(ticket, sent, wall)
        if diagnosis is not None:
            day = await self._alearn(ticket, diagnosis, wall, confirmed_at)
            if day is not None:
                await self._store.amark_day_spent(ticket.key, day=day)
        elif sent:
            adaptive = self._adaptive
            # Only a ledger with learned levels may write them (lift, undo a cut).
            if self._levels_block() and adaptive is not None and adaptive.has_levels(ticket.key):
                await asyncio.to_thread(self._succeeded, ticket, wall, confirmed_at)
            else:
                self._succeeded(ticket, wall, confirmed_at)
        await self._arefresh_levels(wall)

    @staticmethod
    def _settled_tokens(ticket: Reservation, sent: bool, input_tokens: int | None) -> int:
        return _counted_tokens(ticket.tokens, input_tokens) if sent else ticket.tokens

    def _observe(self, ticket: Reservation, sent: bool, wall: float) -> float | None:
        """Track how long answers take: in-flight slots are booked with that allowance.
        Returns when the attempt was confirmed (sent), if it was."""
        confirmed_at = self._sent_at.pop(ticket.slot_id, None)
        if not sent:
            if confirmed_at is not None and self._evidence is not None:
                self._evidence.failed(ticket.key)
            return confirmed_at
        sent_at = ticket.start if confirmed_at is None else confirmed_at
        latency = wall - sent_at
        if latency < 0:
            return confirmed_at  # sent before its start (the caller did not wait): says nothing
        # Jacobson's estimator: the allowance (mean + 4 deviations) covers nearly
        # every answer without letting one slow outlier hold slots for minutes.
        if self._latency is None:
            self._latency, self._latency_dev = latency, latency / 2
        else:
            error = latency - self._latency
            self._latency += error / 8
            self._latency_dev += (abs(error) - self._latency_dev) / 4
        return confirmed_at

    def _succeeded(self, ticket: Reservation, wall: float, confirmed_at: float | None) -> None:
        """A success is evidence: the server admitted us at that level. One at or
        above the level a bare 429 cut us at shows the cut was noise: undo it."""
        evidence = self._evidence
        if evidence is None:
            return
        sent_at = ticket.start if confirmed_at is None else confirmed_at
        stamp = evidence.succeeded(
            ticket.key,
            sent_at=sent_at,
            now=wall,
            slack=self._allowance(),
            counted=confirmed_at is not None,
        )
        if stamp is not None:
            self._undo_cut(ticket.key, stamp, wall)
        adaptive = self._adaptive
        if adaptive is not None and adaptive.has_levels(ticket.key):
            # Never below what the server admitted in the last minute.
            key = ticket.key
            adaptive.lift(
                key,
                "rpm",
                self._configured_of(key).rpm,
                to=evidence.admitted(key, now=wall),
                now=self._clock.monotonic(),
                wall=wall,
            )
            self._budgets.pop(key, None)

    def _undo_cut(self, key: QuotaKey, stamp: float, wall: float) -> None:
        adaptive = self._adaptive
        assert adaptive is not None
        configured = self._configured_of(key).rpm
        now = self._clock.monotonic()
        if adaptive.revert(key, "rpm", configured, now=now, wall=wall, stamp=stamp) is not None:
            self._budgets.pop(key, None)
            self._lanes.clear()

    def _judge_bare(
        self, ticket: Reservation, configured: int | None, wall: float, confirmed_at: float | None
    ) -> Judgement | None:
        """Judge a bare 429 (no quota named) by the recent answers: the judgement
        when it fits a limit, None when it is noise (then say so, once a minute)."""
        evidence, adaptive = self._evidence, self._adaptive
        assert evidence is not None
        assert adaptive is not None
        key = ticket.key
        ceiling = adaptive.ceiling(key, "rpm", configured)
        judgement = evidence.judge(
            key,
            sent_at=ticket.start if confirmed_at is None else confirmed_at,
            now=wall,
            ceiling=ceiling,
            paced=adaptive.effective(
                key, "rpm", configured, now=self._clock.monotonic(), wall=wall
            ),
            decrease=adaptive.policy.decrease,
            slack=self._allowance(),
            counted=confirmed_at is not None,
        )
        if judgement.limit:
            return judgement
        if judgement.why == "far_below":
            # Not a limit yet, nor noise to report: keep a cut level from climbing.
            adaptive.hold(key, "rpm", configured, now=self._clock.monotonic(), wall=wall)
            return None
        if judgement.why == "contradicted":
            stamp = evidence.take_cut(key)
            if stamp is not None:
                self._undo_cut(key, stamp, wall)
        figures = evidence.noise_to_tell(key, now=wall)
        if figures is not None and ceiling is not None:
            tier = self._revealed_tier.get(key.project) or self._policy.tier_of(key.project)
            event = PhantomRateLimit(
                project=key.project,
                model=key.model,
                refused=figures.refused,
                rate=figures.admitted,
                limit=ceiling,
                tier=None if tier == "auto" else tier,
                at=wall,
            )
            _log.warning("%s\n%s", event.message, event.message_zh)
            if self._on_event is not None:
                self._on_event(event)
        return None

    def _learn(
        self,
        ticket: Reservation,
        diagnosis: Diagnosis,
        wall: float,
        confirmed_at: float | None = None,
    ) -> int | None:
        """Learn from a failed attempt; returns the Pacific day to mark spent, if any."""
        key = ticket.key
        quota = diagnosis.quota
        category = diagnosis.category
        per_day = category is Category.DAILY_QUOTA_EXHAUSTED or (
            category is Category.RATE_LIMITED and quota is not None and quota.scope == "day"
        )
        # A bare 429 (no quota named) is judged by the answers before it can cut.
        judged = (
            category is Category.RATE_LIMITED
            and quota is None
            and self._evidence is not None
            and self._configured_of(key).rpm is not None
        )
        if self._evidence is not None and confirmed_at is not None and not judged:
            self._evidence.failed(key)
        if category is not Category.RATE_LIMITED and not per_day:
            return None
        if (
            quota is not None
            and quota.tier == "free"
            and self._policy.tier_of(key.project) == "auto"
            and key.project not in self._revealed_tier
        ):
            # The quota id says FreeTier: the free-tier table applies to this project.
            self._revealed_tier[key.project] = "free"
            self._forget_limits(project=key.project)
        if self._adaptive is not None:
            metric: Metric
            if quota is None:
                metric = "rpm"
            elif quota.scope == "day":
                metric = "rpd" if quota.unit == "requests" else "tpd"
            else:
                metric = "rpm" if quota.unit == "requests" else "tpm"
            configured = getattr(self._configured_of(key), metric)
            now = self._clock.monotonic()
            if quota is not None and quota.limit is not None and quota.limit > 0:
                self._adaptive.learn_stated(
                    key, metric, quota.limit, configured, now=now, wall=wall
                )
            elif not per_day:
                judgement = None
                if judged:
                    judgement = self._judge_bare(ticket, configured, wall, confirmed_at)
                noise = judged and judgement is None
                learned = (
                    None
                    if noise
                    else self._adaptive.cut(
                        key,
                        metric,
                        configured,
                        now=now,
                        wall=wall,
                        booked_at=ticket.booked_at,
                        floor=1 if judgement is None else judgement.floor,
                        to=None if judgement is None else judgement.to,
                    )
                )
                stamp = self._adaptive.last_cut(key, metric)
                if judgement is not None and learned is not None and stamp is not None:
                    assert self._evidence is not None
                    self._evidence.cut_made(
                        key, now=wall, level=judgement.level, stamp=stamp, to=learned.enforced
                    )
            self._budgets.pop(key, None)
            self._lanes.clear()  # the budgets and hard limits they hold may be stale
        if per_day:
            return day_index(wall)[0]
        return None

    def _follow(self, key: QuotaKey) -> None:
        """The first time `key` is paced, read what other processes learned about it."""
        adaptive = self._adaptive
        if adaptive is None or adaptive.follows(key):
            return
        if adaptive.follow(key, wall=self._clock.time()):
            self._budgets.clear()
            self._lanes.clear()

    def _levels_block(self) -> bool:
        """Whether reading or writing the learned levels does I/O (SQLite, Redis)."""
        adaptive = self._adaptive
        shared = None if adaptive is None else adaptive.shared
        return shared is not None and not isinstance(shared, MemoryLevelStore)

    async def _alearn(
        self,
        ticket: Reservation,
        diagnosis: Diagnosis,
        wall: float,
        confirmed_at: float | None = None,
    ) -> int | None:
        """`_learn` for asyncio callers: a shared level store is written from a worker
        thread, so the event loop does not wait on SQLite or Redis."""
        if self._levels_block():
            return await asyncio.to_thread(self._learn, ticket, diagnosis, wall, confirmed_at)
        return self._learn(ticket, diagnosis, wall, confirmed_at)

    async def _arefresh_levels(self, wall: float) -> None:
        adaptive = self._adaptive
        if adaptive is None or not adaptive.refresh_due(wall):
            return
        if self._levels_block():
            await asyncio.to_thread(self._refresh_levels, wall)
        else:
            self._refresh_levels(wall)

    def _refresh_levels(self, wall: float) -> None:
        """Every few seconds, at settle (never on the reserve path), read the levels
        other processes learned; drop the budgets they change."""
        adaptive = self._adaptive
        if adaptive is None or not adaptive.refresh_due(wall):
            return
        changed = adaptive.refresh(wall=wall)
        if changed:
            for key in changed:
                self._budgets.pop(key, None)
            self._lanes.clear()

    def _forget_limits(self, *, project: str) -> None:
        for cache in (self._configured, self._budgets):
            for key in [k for k in cache if k.project == project]:
                del cache[key]
        self._lanes.clear()

    # -- tally (no limits known yet) --------------------------------------------------

    def paces(self, project: str, model: str) -> bool:
        """Whether (project, model) has any limit to pace by now. False only while
        nothing is known (`tier="auto"` before the server revealed a limit): then the
        Guard sends without a permit and `tally`s the attempt afterwards."""
        lane = self._lanes.get((project, model))
        if lane is None:
            try:
                lane = self._lane(project, model)
            except ConfigError:
                return True  # `reserve` raises the clear error
        return lane.paces

    def _tally_slot(
        self, project: str, model: str, tokens: int, at: float, sent_at: float | None
    ) -> Reservation:
        """A slot that starts and ends at `at`, the attempt's answer, as the ledger
        keeps it. `booked_at` is when it was sent, so that the 429s of one burst
        count as one cut (see `_learn`)."""
        key = QuotaKey(project, normalize_model(model))
        booked_at = self._clock.monotonic() if sent_at is None else sent_at
        slot_id = f"{self._id_prefix}-{next(self._ids):x}"
        return Reservation(key, slot_id, at, at, tokens, 0, "primary", booked_at)

    def tally(
        self,
        *,
        project: str,
        model: str,
        tokens: int,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
        sent_at: float | None = None,
        requests: int = 1,
    ) -> None:
        """Record an attempt sent without a permit (see `paces`), and learn from it.
        `sent_at`: the clock's monotonic reading when it was sent.

        Nothing waits on these slots until a limit is known, so the answered ones
        are written in batches (every 32 attempts, or once the oldest is a clock
        second old, and before anything reads or books): one store visit per
        batch instead of several per request. A failure is written at once, with
        everything before it, since it may teach a limit. `requests`: how many
        requests the server counts the call as (see `reserve`)."""
        now = self._clock.time()
        used = _counted_tokens(tokens, input_tokens)
        self._tally_items(project, model, now, sent_at, requests, diagnosis)
        if diagnosis is None:
            if self._queue_tally((project, model, used, now, sent_at)):
                self._flush_tallies()
            return
        self._flush_tallies()
        reservation = self._tally_slot(project, model, used, now, sent_at)
        if self._record(reservation):
            day = self._learn(reservation, diagnosis, now)
            if day is not None:
                self._store.mark_day_spent(reservation.key, day=day)

    async def atally(
        self,
        *,
        project: str,
        model: str,
        tokens: int,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
        sent_at: float | None = None,
        requests: int = 1,
    ) -> None:
        """`tally` for asyncio callers."""
        now = self._clock.time()
        used = _counted_tokens(tokens, input_tokens)
        self._tally_items(project, model, now, sent_at, requests, diagnosis)
        if diagnosis is None:
            if self._queue_tally((project, model, used, now, sent_at)):
                await self._aflush_tallies()
            return
        await self._aflush_tallies()
        reservation = self._tally_slot(project, model, used, now, sent_at)
        if await self._arecord(reservation):
            day = await self._alearn(reservation, diagnosis, now)
            if day is not None:
                await self._store.amark_day_spent(reservation.key, day=day)

    def _tally_items(
        self,
        project: str,
        model: str,
        now: float,
        sent_at: float | None,
        requests: int,
        diagnosis: Diagnosis | None,
    ) -> None:
        """Queue the items of a call beyond its first (written with the next batch)."""
        if requests > 1 and not _refused(diagnosis):
            with self._tally_lock:
                self._tallies.extend((project, model, 0, now, sent_at) for _ in range(requests - 1))

    def _queue_tally(self, entry: _Tallied) -> bool:
        """Queue one answered attempt; True when the batch is due."""
        with self._tally_lock:
            pending = self._tallies
            pending.append(entry)
            return len(pending) >= _TALLY_BATCH or entry[3] - pending[0][3] >= _TALLY_DELAY

    def _take_tallies(self) -> list[Reservation]:
        with self._tally_lock:
            pending, self._tallies = self._tallies, []
        return [self._tally_slot(*entry) for entry in pending]

    def _flush_tallies(self) -> None:
        if self._tallies:
            self._store.record_answered(self._take_tallies())
            # Tallies stand in for settles here: the moment to hear what other
            # processes learned (a limit they learned makes this one pace too).
            self._refresh_levels(self._clock.time())

    async def _aflush_tallies(self) -> None:
        if self._tallies:
            await self._store.arecord_answered(self._take_tallies())
            await self._arefresh_levels(self._clock.time())

    def _record(self, reservation: Reservation) -> bool:
        """Write one finished slot (booked with no limits, settled at its end); False
        when its day is marked spent. A batch goes through `record_answered`."""
        result = self._store.acquire(
            reservation.key,
            slot_id=reservation.slot_id,
            budget=NO_LIMITS,
            tokens=reservation.tokens,
            now=reservation.start,
            allowance=0.0,
            deadline=None,
        )
        if not isinstance(result, Granted):
            return False  # the day is marked spent: nothing more to count
        ticket = reservation._replace(day=result.day, origin=result.origin)
        self._store.settle(ticket, sent=True, end=reservation.end, tokens=reservation.tokens)
        return True

    async def _arecord(self, reservation: Reservation) -> bool:
        result = await self._store.aacquire(
            reservation.key,
            slot_id=reservation.slot_id,
            budget=NO_LIMITS,
            tokens=reservation.tokens,
            now=reservation.start,
            allowance=0.0,
            deadline=None,
        )
        if not isinstance(result, Granted):
            return False
        ticket = reservation._replace(day=result.day, origin=result.origin)
        await self._store.asettle(ticket, sent=True, end=reservation.end, tokens=reservation.tokens)
        return True

    # -- reading --------------------------------------------------------------------

    def usage(self, project: str, model: str) -> KeyUsage:
        """What the ledger of (project, model) holds now."""
        self._flush_tallies()
        key = QuotaKey(project, normalize_model(model))
        return self._store.usage(key, now=self._clock.time())

    def earliest_start(self, project: str, model: str, *, tokens: int = 0) -> float | None:
        """Seconds until a request could start, without booking; None if the day is spent."""
        self._flush_tallies()
        key = QuotaKey(project, normalize_model(model))
        budget = self._budget_of(key)
        now = self._clock.time()
        usage = self._store.usage(key, now=now, period=budget.period)
        if usage.day_spent or (
            budget.day_requests is not None and usage.day_requests >= budget.day_requests
        ):
            return None
        if budget.requests is not None and usage.requests >= budget.requests:
            assert usage.next_free is not None
            return max(0.0, usage.next_free - now)
        return 0.0


def _refused(diagnosis: Diagnosis | None) -> bool:
    """A bare 429 (no quota named): the server refused the request for want of
    capacity, not of the project's quota, so the ledger does not count it. Were it
    counted, a phantom 429 would take a slot a real request could use, and the floor
    of what the server admits (see `evidence`) would sink under noise at every cut."""
    return (
        diagnosis is not None
        and diagnosis.http_status == 429
        and diagnosis.category is Category.RATE_LIMITED
        and diagnosis.quota is None
    )


class _Items(tuple[Reservation, ...]):
    """The slots of a call the server counts as several requests, in booking order."""

    __slots__ = ()


def _joined(permits: list[Permit]) -> Permit:
    """One permit for a call's slots: it waits for the latest of them."""
    head = permits[0]
    return Permit(
        head.project,
        head.model,
        head.tokens,
        max(p.wait for p in permits),
        _Items(_ticket_of(p) for p in permits),
    )


def _ticket_of(permit: Permit) -> Reservation:
    ticket = permit.ticket
    if not isinstance(ticket, Reservation):
        raise TypeError(
            "confirm() and settle() need a Permit returned by a QuotaLimiter's reserve(), "
            f"got ticket={ticket!r}"
        )
    return ticket


def _seconds(value: float | dt.timedelta | None, name: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if not seconds >= 0:
        raise ConfigError(f"{name}={value!r} must be a duration >= 0 seconds (or None)")
    return seconds
