"""Circuit breaker per model (and per project): stop sending to an upstream that is down.

    closed ──(a failure ratio over a window of enough calls, or N failures in a row)──► open
    open ──(cooldown elapsed)──► half-open: up to `half_open_probes` requests go through
    half-open ──(a probe succeeds)──► closed        ──(a probe fails)──► open, longer

It must see an outage, not bad luck. The main rule is a ratio: at least `min_calls`
outcomes within `window` seconds, of which at least `failure_ratio` failed. With the
defaults (20 calls, 80%) a model failing 35% of its requests almost never trips it
(P[Binomial(20, 0.35) >= 16] is 5e-5 per window), while one failing 90% does on its
first 20 calls with P = 0.96. "N consecutive failures" (`failure_threshold`, 8) stays as the fast
path for a model that fails everything: 8 in a row, which is three calls with
`fallback_after=3`; at a 35% error rate a run of 8 starts with probability
0.65 * 0.35**8, about 1.5e-4 per attempt.

While an outage is young (the breaker first opened less than `storm_after` seconds
ago, 2 minutes), it probes every `cooldown` (5 s): a blip of a minute is noticed
within seconds of its end, so the calls go back to the model they asked for. Past
that, the cooldown doubles with each failed probe (up to `max_cooldown`), and when
more than `storm_failures` failures fell within `storm_window` (the guide: more than
10 failures over several minutes) it pauses `storm_cooldown` (10 min) at least:
time to check the status page, not to hammer. A probe is one request, so a dead
model costs 24 requests in its first two minutes, then one per pause.

The transitions are pure functions of a `BreakerSnapshot` (a frozen value), the
policy and the wall clock (`Clock.time()`, so processes sharing a store agree).
`Breaker` applies them through a `BreakerStore`, a two-method protocol that a
SQLite or Redis store implements by making `update` one transaction.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from gemini_guard.diagnosis import Diagnosis
from gemini_guard.policies.retry import UPSTREAM_FAILURES, seconds

__all__ = [
    "Admission",
    "Breaker",
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerStore",
    "BreakerTransition",
    "MemoryBreakerStore",
    "State",
    "admit",
    "counts_as_failure",
    "peek",
    "record",
    "release",
]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a model's breaker opens, for how long, and how it tests the water again."""

    failure_threshold: int = 8  # the fast path: this many upstream failures in a row
    failure_ratio: float = 0.8  # the main rule: this share of failures over `window`...
    window: float = 60.0  # seconds
    min_calls: int = 20  # ...counted only with at least this many calls in the window
    cooldown: float = 5.0  # between probes while the outage is young
    max_cooldown: float = 300.0  # past `storm_after`, the doubling stops here
    storm_after: float = 120.0  # an outage older than this is no blip...
    storm_failures: int = 10  # ...and with more than this many failures within...
    storm_window: float = 300.0
    storm_cooldown: float = 600.0  # ...pause at least this long
    half_open_probes: int = 1  # requests let through at once while half-open
    probe_lease: float = 120.0  # a probe not reported by then is presumed lost

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "min_calls", "storm_failures", "half_open_probes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError(f"failure_ratio must be in (0, 1], got {self.failure_ratio!r}")
        durations = (
            "window",
            "cooldown",
            "storm_after",
            "max_cooldown",
            "storm_window",
            "storm_cooldown",
            "probe_lease",
        )
        for name in durations:
            object.__setattr__(self, name, seconds(getattr(self, name), name=name))
        if self.max_cooldown < self.cooldown:
            raise ValueError(
                f"max_cooldown ({self.max_cooldown}) must be >= cooldown ({self.cooldown})"
            )

    def with_options(self, **changes: Any) -> BreakerPolicy:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Everything a breaker remembers; small, and plain data for any store."""

    state: State = "closed"
    consecutive_failures: int = 0
    open_until: float = 0.0  # wall seconds; meaningful while open
    opens: int = 0  # opens since the last successful close (drives the doubling)
    outcomes: tuple[tuple[float, bool], ...] = ()  # (wall time, failed) within the window
    failures: tuple[float, ...] = ()  # failure times within the storm window
    probes: tuple[float, ...] = ()  # start times of probes in flight (half-open)
    down_since: float = 0.0  # wall seconds of the first open since the last close; 0: closed

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "open_until": self.open_until,
            "opens": self.opens,
            "outcomes": [[t, failed] for t, failed in self.outcomes],
            "failures": list(self.failures),
            "probes": list(self.probes),
            "down_since": self.down_since,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BreakerSnapshot:
        state = raw["state"]
        if state not in ("closed", "open", "half_open"):
            raise ValueError(f"unknown breaker state {state!r}")
        return cls(
            state=state,
            consecutive_failures=int(raw["consecutive_failures"]),
            open_until=float(raw["open_until"]),
            opens=int(raw["opens"]),
            outcomes=tuple((float(t), bool(f)) for t, f in raw["outcomes"]),
            failures=tuple(float(t) for t in raw["failures"]),
            probes=tuple(float(t) for t in raw["probes"]),
            # absent in snapshots written before it existed
            down_since=float(raw.get("down_since", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Admission:
    """May a request go to this model now? `probe`: it is a half-open probe."""

    allowed: bool
    state: State
    probe: bool = False
    retry_at: float | None = None  # wall seconds when an open breaker half-opens


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """The breaker moved from `old` to `new` (for telemetry)."""

    old: State
    new: State
    open_until: float | None = None
    reason: str = ""


_CLOSED = BreakerSnapshot()
_ADMITTED = Admission(True, "closed")


def _within(
    outcomes: tuple[tuple[float, bool], ...], since: float
) -> tuple[tuple[float, bool], ...]:
    """The outcomes after `since`. They are appended in time order, so when the
    oldest is recent enough all are (the common case costs one comparison)."""
    if not outcomes or outcomes[0][0] > since:
        return outcomes
    return tuple(o for o in outcomes if o[0] > since)


def counts_as_failure(diagnosis: Diagnosis) -> bool:
    """Only upstream failures trip a breaker: a quota 429 or a bad request says
    nothing about the model's health."""
    return diagnosis.category in UPSTREAM_FAILURES


def _cooldown(
    policy: BreakerPolicy, opens: int, failures: tuple[float, ...], down_for: float
) -> float:
    if down_for < policy.storm_after:
        return policy.cooldown  # a young outage: probe often, it may be a blip
    growth: float = 2.0 ** min(opens - 1, 32)
    cooldown = min(policy.max_cooldown, policy.cooldown * growth)
    if len(failures) > policy.storm_failures:
        cooldown = max(cooldown, policy.storm_cooldown)
    return cooldown


def _open(
    snap: BreakerSnapshot, policy: BreakerPolicy, now: float, reason: str
) -> tuple[BreakerSnapshot, BreakerTransition]:
    opens = snap.opens + 1
    down_since = snap.down_since if snap.state != "closed" and snap.down_since else now
    until = now + _cooldown(policy, opens, snap.failures, now - down_since)
    new = dataclasses.replace(
        snap, state="open", open_until=until, opens=opens, probes=(), down_since=down_since
    )
    return new, BreakerTransition(snap.state, "open", until, reason)


def peek(snap: BreakerSnapshot | None, now: float) -> Admission:
    """Would a request be admitted at `now`? Takes no probe slot (used to decide
    whether a later model of the chain is worth falling back to)."""
    if snap is None or snap.state == "closed":
        return _ADMITTED
    if snap.state == "open" and now < snap.open_until:
        return Admission(False, "open", retry_at=snap.open_until)
    return Admission(True, "half_open", probe=True)


def admit(
    snap: BreakerSnapshot | None, policy: BreakerPolicy, now: float
) -> tuple[BreakerSnapshot, Admission, BreakerTransition | None]:
    """Ask to send one request at `now` (wall seconds); takes a probe slot if half-open."""
    snap = snap or _CLOSED
    if snap.state == "closed":
        return snap, _ADMITTED, None
    transition = None
    if snap.state == "open":
        if now < snap.open_until:
            return snap, Admission(False, "open", retry_at=snap.open_until), None
        snap = dataclasses.replace(snap, state="half_open", probes=())
        transition = BreakerTransition("open", "half_open", None, "cooldown elapsed")
    live = tuple(t for t in snap.probes if now - t < policy.probe_lease)
    if len(live) >= policy.half_open_probes:
        snap = dataclasses.replace(snap, probes=live)
        return snap, Admission(False, "half_open"), transition
    snap = dataclasses.replace(snap, probes=(*live, now))
    return snap, Admission(True, "half_open", probe=True), transition


def record(
    snap: BreakerSnapshot | None,
    policy: BreakerPolicy,
    now: float,
    *,
    failed: bool,
    probe: bool = False,
) -> tuple[BreakerSnapshot, BreakerTransition | None]:
    """Record how a request ended (`failed`: an upstream failure)."""
    snap = snap or _CLOSED
    outcomes = _within(snap.outcomes, now - policy.window)
    outcomes = (*outcomes, (now, failed))[-max(policy.min_calls, 64) :]
    failures = snap.failures
    if failures and failures[0] <= now - policy.storm_window:
        failures = tuple(t for t in failures if now - t < policy.storm_window)
    if failed:
        failures = (*failures, now)[-(policy.storm_failures + 1) :]
    probes = snap.probes[1:] if probe else snap.probes

    if not failed:
        if snap.state == "half_open" and probe:
            closed = BreakerSnapshot(outcomes=outcomes, failures=failures)
            return closed, BreakerTransition("half_open", "closed", None, "probe succeeded")
        # The hot path of every successful call: build the value directly
        # (dataclasses.replace costs several times more).
        return BreakerSnapshot(
            snap.state, 0, snap.open_until, snap.opens, outcomes, failures, probes, snap.down_since
        ), None

    snap = BreakerSnapshot(
        snap.state,
        snap.consecutive_failures,
        snap.open_until,
        snap.opens,
        outcomes,
        failures,
        probes,
        snap.down_since,
    )

    snap = dataclasses.replace(snap, consecutive_failures=snap.consecutive_failures + 1)
    if snap.state == "half_open":
        if probe:
            return _open(snap, policy, now, "probe failed")
        return snap, None
    if snap.state == "open":
        # A request admitted before the breaker opened ended late: already open.
        return snap, None
    if snap.consecutive_failures >= policy.failure_threshold:
        return _open(snap, policy, now, f"{snap.consecutive_failures} consecutive failures")
    if len(outcomes) >= policy.min_calls:
        ratio = sum(1 for _, f in outcomes if f) / len(outcomes)
        if ratio >= policy.failure_ratio:
            return _open(snap, policy, now, f"{ratio:.0%} of {len(outcomes)} calls failed")
    return snap, None


def release(snap: BreakerSnapshot | None) -> BreakerSnapshot:
    """Give back a half-open probe that was admitted but never sent (its slot frees
    at once instead of at the end of its lease)."""
    snap = snap or _CLOSED
    if not snap.probes:
        return snap
    return dataclasses.replace(snap, probes=snap.probes[1:])


class BreakerStore(Protocol):
    """Where breaker snapshots live. `update` must be atomic for its key (a SQL
    transaction, a Redis WATCH/MULTI or script), so processes agree."""

    def load(self, key: str) -> BreakerSnapshot | None: ...

    def update(
        self,
        key: str,
        change: Callable[[BreakerSnapshot | None], BreakerSnapshot],
    ) -> BreakerSnapshot: ...


@dataclass(slots=True)
class MemoryBreakerStore:
    """Breaker snapshots of one process (`store="memory://"`)."""

    _snapshots: dict[str, BreakerSnapshot] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, key: str) -> BreakerSnapshot | None:
        return self._snapshots.get(key)

    def update(
        self,
        key: str,
        change: Callable[[BreakerSnapshot | None], BreakerSnapshot],
    ) -> BreakerSnapshot:
        with self._lock:
            new = change(self._snapshots.get(key))
            self._snapshots[key] = new
            return new

    def record(
        self, key: str, policy: BreakerPolicy, now: float, *, failed: bool, probe: bool
    ) -> BreakerTransition | None:
        """`update` with the `record` change, without building the change."""
        with self._lock:
            new, moved = record(self._snapshots.get(key), policy, now, failed=failed, probe=probe)
            self._snapshots[key] = new
            return moved


Change = Callable[[BreakerSnapshot | None], BreakerSnapshot]


@runtime_checkable
class AsyncBreakerStore(BreakerStore, Protocol):
    """A store doing I/O offers awaitable twins, so async callers do not block."""

    async def aload(self, key: str) -> BreakerSnapshot | None: ...

    async def aupdate(self, key: str, change: Change) -> BreakerSnapshot: ...


def _news(diagnosis: Diagnosis | None, probe: bool) -> bool | None:
    """What an attempt's end tells a breaker: failed (True), succeeded (False), or
    nothing (None: a quota or request error says nothing of the model's health,
    unless the attempt was a probe, whose slot must be given back)."""
    failed = diagnosis is not None and counts_as_failure(diagnosis)
    if diagnosis is not None and not failed and not probe:
        return None
    return failed


class _RecordChange:
    """`record` as a store change; keeps the transition of its last run (a store
    may run a change again when its transaction is retried)."""

    __slots__ = ("failed", "moved", "now", "policy", "probe")

    def __init__(self, policy: BreakerPolicy, now: float, failed: bool, probe: bool) -> None:
        self.policy = policy
        self.now = now
        self.failed = failed
        self.probe = probe
        self.moved: BreakerTransition | None = None

    def __call__(self, snap: BreakerSnapshot | None) -> BreakerSnapshot:
        new, self.moved = record(snap, self.policy, self.now, failed=self.failed, probe=self.probe)
        return new


class Breaker:
    """One breaker (a model of a project) applied through a store."""

    __slots__ = ("_astore", "key", "policy", "store")

    def __init__(self, key: str, *, policy: BreakerPolicy, store: BreakerStore) -> None:
        self.key = key
        self.policy = policy
        self.store = store
        # Checked once: a runtime protocol check costs microseconds.
        self._astore = store if isinstance(store, AsyncBreakerStore) else None

    def peek(self, now: float) -> Admission:
        return peek(self.store.load(self.key), now)

    def admit(self, now: float) -> tuple[Admission, BreakerTransition | None]:
        # A closed breaker admits without changing: a plain read, no transaction.
        # (Racing a process that opens it now is the same as being admitted just
        # before it opened.)
        snap = self.store.load(self.key)
        if snap is None or snap.state == "closed":
            return _ADMITTED, None
        change, result = self._admit_change(now)
        self.store.update(self.key, change)
        return result[-1]

    def _admit_change(
        self, now: float
    ) -> tuple[Change, list[tuple[Admission, BreakerTransition | None]]]:
        result: list[tuple[Admission, BreakerTransition | None]] = []

        def change(snap: BreakerSnapshot | None) -> BreakerSnapshot:
            new, admission, transition = admit(snap, self.policy, now)
            result.append((admission, transition))  # a store may run it again: use the last
            return new

        return change, result

    def record(
        self, now: float, diagnosis: Diagnosis | None, *, probe: bool = False
    ) -> BreakerTransition | None:
        """Record an attempt's end: `diagnosis` None for a success."""
        failed = _news(diagnosis, probe)
        if failed is None:
            return None
        store = self.store
        if type(store) is MemoryBreakerStore:
            # The path of every success without a shared store: no change object.
            return store.record(self.key, self.policy, now, failed=failed, probe=probe)
        change = _RecordChange(self.policy, now, failed, probe)
        store.update(self.key, change)
        return change.moved

    def release_probe(self) -> None:
        """A probe admitted by `admit` was not sent after all (see `release`)."""
        self.store.update(self.key, release)

    # The same, for asyncio callers: a store with `aload`/`aupdate` (SQLite, Redis)
    # is awaited; one without (memory) is asked directly, it does no I/O.

    async def aadmit(self, now: float) -> tuple[Admission, BreakerTransition | None]:
        store = self._astore
        if store is None:
            return self.admit(now)
        snap = await store.aload(self.key)
        if snap is None or snap.state == "closed":
            return _ADMITTED, None
        change, result = self._admit_change(now)
        await store.aupdate(self.key, change)
        return result[-1]

    async def arecord(
        self, now: float, diagnosis: Diagnosis | None, *, probe: bool = False
    ) -> BreakerTransition | None:
        store = self._astore
        if store is None:
            return self.record(now, diagnosis, probe=probe)
        failed = _news(diagnosis, probe)
        if failed is None:
            return None
        change = _RecordChange(self.policy, now, failed, probe)
        await store.aupdate(self.key, change)
        return change.moved

    async def arelease_probe(self) -> None:
        store = self._astore
        if store is None:
            self.release_probe()
            return
        await store.aupdate(self.key, release)

    def state(self, now: float) -> State:
        return self.peek(now).state
