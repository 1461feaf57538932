"""Learn the limit the server really enforces, and pace by it.

Google changes quotas without notice (the free tier was cut 50-80% on
2025-12-06/07). Two signals reveal the enforced limit:

- a 429 whose body carries `quotaValue`: the server states the limit; the
  limiter adopts it as the new ceiling at once;
- a 429 that arrives although the ledger had room, when the evidence fits a limit
  (a body naming a quota; for a bare 429, see `evidence`): the limit must be lower
  than configured; the effective limit is cut multiplicatively (AIMD, as TCP
  does), never below the floor the evidence gives (what the server just admitted).

After each quiet period the effective limit recovers additively, and never above
the ceiling (the configured limit, or the stated `quotaValue` if lower); a cut that
the answers then contradict is undone at once (`revert`). Every change is reported
as an event. This module is pure: it is given the time.

The limits are the project's, so what one process learns holds for all. Given a
`LevelStore` (`shared_levels`, beside the ledger), every change — a cut, a
statement, a recovery step — is a pure function applied atomically to the shared
level, which merges learners: a 429 from a request booked before the last cut, or
by a process that had not seen that cut yet, cuts nothing; a statement caps the
level whatever it was; a recovery step already taken by another process is not
taken again. Only the process whose change was written emits the event. Each
process paces by its own view of the levels, read the first time it paces a
ledger (`follow`) and then every `refresh_period` seconds (`refresh`, which the
limiter calls when an attempt is settled, off the reserve path), and replaced by
the store's answer whenever it writes. When the store fails, the process learns
on its own and merges what it learned when the store answers again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TypeVar

from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.quota.events import LimitLearned, LimitRecovered, Metric
from gemini_guard.quota.shared_levels import Change, Level, LevelStore
from gemini_guard.quota.stores.base import QuotaKey

__all__ = ["AdaptiveLimits", "AdaptivePolicy"]

_Event = TypeVar("_Event")
_log = logging.getLogger("gemini_guard")
_METRICS: tuple[Metric, ...] = ("rpm", "tpm", "rpd", "tpd")
_MAX_FOLLOWED = 10_000  # ledgers whose shared levels a process keeps a view of


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    """How fast the effective limit falls and comes back, and how it is shared.

    - `decrease`: factor applied on a 429 the ledger did not expect (0 < f < 1).
    - `recovery_period`: seconds without a cut (or a 429 that fits the level) before
      each step up (15: a wrong cut of 30% is undone within 45 s of clean answers;
      the price, for a limit only bare 429s reveal, is a probe above it now and then).
    - `recovery_step`: each step adds this fraction of the ceiling (at least 1).
    - `shared`: keep the levels in the quota store, shared by every process using it.
    - `refresh_period`: seconds between two reads of the shared levels.
    """

    decrease: float = 0.7
    recovery_period: float = 15.0
    recovery_step: float = 0.1
    shared: bool = True
    refresh_period: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.decrease < 1:
            raise ConfigError(f"adaptive.decrease={self.decrease!r} must be between 0 and 1")
        if not self.recovery_period > 0:
            raise ConfigError(
                f"adaptive.recovery_period={self.recovery_period!r} must be > 0 seconds"
            )
        if not 0 < self.recovery_step <= 1:
            raise ConfigError(f"adaptive.recovery_step={self.recovery_step!r} must be in (0, 1]")
        if not self.refresh_period > 0:
            raise ConfigError(
                f"adaptive.refresh_period={self.refresh_period!r} must be > 0 seconds"
            )


def _ceiling(level: Level | None, configured: int | None) -> int | None:
    stated = level.stated if level is not None else None
    if stated is None:
        return configured
    return stated if configured is None else min(configured, stated)


def _recovered(
    level: Level, configured: int | None, t: float, policy: AdaptivePolicy
) -> Level | None:
    """`level` with the recovery steps due at `t`; None once back at a configured ceiling."""
    ceiling = _ceiling(level, configured)
    if ceiling is None or level.effective >= ceiling:
        return level
    if t - level.last_change < policy.recovery_period:
        return level
    # One step at a time, each after a period at the level before it: a level that
    # nobody paced by for a while has not been tried, so it is not stepped past.
    step = max(1, math.floor(ceiling * policy.recovery_step))
    effective = min(ceiling, level.effective + step)
    if effective >= ceiling and level.stated is None:
        return None  # nothing left to remember: the configured limit applies
    return replace(level, effective=effective, last_change=t)


def _held(level: Level | None, configured: int | None, t: float) -> Level | None:
    """`level` with its recovery restarted at `t`: a 429 that fits a limit at the
    level paced by says the level is right, so the next step up waits a period.
    (A level at its ceiling has nothing to recover: left as it is.)"""
    if level is None or level.last_change >= t:
        return level
    ceiling = _ceiling(level, configured)
    if ceiling is None or level.effective >= ceiling:
        return level
    return replace(level, last_change=t)


def _paced(level: Level | None, configured: int | None) -> int | None:
    """The limit a level (with no recovery due) paces by."""
    if level is None:
        return configured
    ceiling = _ceiling(level, configured)
    # With no ceiling (this process knows no limit), pace by what others learned.
    return level.effective if ceiling is None else min(level.effective, ceiling)


def _merged(shared: Level | None, local: Level) -> Level:
    """What a process learned while the store was unreachable, merged into the store's
    level: the lower level and the lower stated value win."""
    if shared is None:
        return local
    low = local if local.effective < shared.effective else shared
    stateds = [s for s in (shared.stated, local.stated) if s is not None]
    stated = min(stateds) if stateds else None
    return Level(
        effective=low.effective if stated is None else min(low.effective, stated),
        stated=stated,
        last_change=low.last_change,
        last_cut=max(shared.last_cut, local.last_cut),
    )


def _merge_into(local: Level) -> Change:
    return lambda shared: _merged(shared, local)


class AdaptiveLimits:
    """The effective limit per (ledger, metric): configured, learned, recovering.

    `shared`: where the levels are kept for every process (see `shared_levels`);
    None keeps them in this object. Times: `now` is the monotonic clock, `wall` the
    wall clock; shared levels are kept in wall time, the one clock hosts share.
    """

    def __init__(
        self,
        policy: AdaptivePolicy | None = None,
        *,
        on_event: Callable[[object], None] | None = None,
        shared: LevelStore | None = None,
    ) -> None:
        self.policy = policy or AdaptivePolicy()
        self._on_event = on_event
        self._shared = shared
        # The levels paced by: this process's own, or its view of the shared ones.
        self._levels: dict[tuple[QuotaKey, Metric], Level] = {}
        # How many metrics of each key have a level: `has_levels` runs per request.
        self._counts: dict[QuotaKey, int] = {}
        # Ledgers whose shared levels are read at each refresh (insertion ordered).
        self._followed: dict[QuotaKey, None] = {}
        # When each level's last cut entered the view: requests booked before then
        # were paced without that cut, so their 429s cannot cut again.
        self._seen_at: dict[tuple[QuotaKey, Metric], float] = {}
        # Learned while the store failed: merged into it when it answers again.
        self._pending: set[tuple[QuotaKey, Metric]] = set()
        self._refreshed_at = -math.inf
        self._refresh_at = -math.inf if shared is not None else math.inf
        self._failing = False

    @property
    def shared(self) -> LevelStore | None:
        return self._shared

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    def has_levels(self, key: QuotaKey) -> bool:
        return key in self._counts

    def _set(self, name: tuple[QuotaKey, Metric], level: Level | None, *, at: float) -> None:
        old = self._levels.get(name)
        if level is None:
            if old is not None:
                del self._levels[name]
                self._seen_at.pop(name, None)
                key = name[0]
                left = self._counts[key] - 1
                if left:
                    self._counts[key] = left
                else:
                    del self._counts[key]
            return
        self._levels[name] = level
        if old is None or old.last_cut != level.last_cut:
            self._seen_at[name] = max(at, level.last_cut)
        if old is None:
            self._counts[name[0]] = self._counts.get(name[0], 0) + 1

    def _time(self, now: float, wall: float) -> float:
        return now if self._shared is None else wall

    # -- sharing ----------------------------------------------------------------------

    def follows(self, key: QuotaKey) -> bool:
        """True once the shared levels of `key` are in this process's view."""
        return self._shared is None or key in self._followed

    def follow(self, key: QuotaKey, *, wall: float) -> bool:
        """Read the shared levels of `key` (the first time it is paced) and keep them
        in view. True when the view changed: budgets computed before are stale."""
        shared = self._shared
        if shared is None or key in self._followed:
            return False
        changed = False
        if len(self._followed) >= _MAX_FOLLOWED:
            # Bounded: forget the views (the store keeps the levels) and start over.
            for name in [n for n in list(self._levels) if n not in self._pending]:
                self._set(name, None, at=wall)
            self._followed.clear()
            changed = True
        self._followed[key] = None
        try:
            loaded = shared.load((key,), at=wall)
        except StoreError as exc:
            self._failed(exc)
            return changed
        self._answered()
        return bool(self._adopt((key,), loaded, at=wall)) or changed

    def refresh_due(self, wall: float) -> bool:
        """Whether the shared levels should be read again (never without a store)."""
        return not self._refreshed_at <= wall < self._refresh_at

    def refresh(self, *, wall: float) -> set[QuotaKey]:
        """Read the shared levels of every followed ledger, first merging what was
        learned while the store failed. Returns the ledgers whose levels changed."""
        shared = self._shared
        if shared is None:
            return set()
        self._refreshed_at, self._refresh_at = wall, wall + self.policy.refresh_period
        # Snapshots: other threads may follow ledgers meanwhile (list() copies atomically).
        followed, pending = list(self._followed), sorted(self._pending)
        if not followed and not pending:
            return set()
        try:
            for name in pending:
                local = self._levels.get(name)
                if local is not None:
                    shared.update(*name, _merge_into(local), at=wall)
                self._pending.discard(name)
            loaded = shared.load(followed, at=wall)
        except StoreError as exc:
            self._failed(exc)
            return set()
        self._answered()
        return self._adopt(followed, loaded, at=wall)

    def _adopt(
        self,
        keys: Collection[QuotaKey],
        loaded: dict[tuple[QuotaKey, Metric], Level],
        *,
        at: float,
    ) -> set[QuotaKey]:
        changed: set[QuotaKey] = set()
        for key in keys:
            for metric in _METRICS:
                name = (key, metric)
                if name in self._pending:
                    continue  # ours is newer than the store's until merged
                level = loaded.get(name)
                if self._levels.get(name) != level:
                    self._set(name, level, at=at)
                    changed.add(key)
        return changed

    def _commit(
        self,
        key: QuotaKey,
        metric: Metric,
        change: Change,
        *,
        wall: float,
        t: float,
        learned: bool,
    ) -> Level | None:
        """Apply `change` to the level of (key, metric): in the store when shared (its
        answer then replaces the view), else, or when the store fails, to the view.
        `t` is `wall` when shared, else the monotonic time the view is kept in."""
        name = (key, metric)
        shared = self._shared
        if shared is not None:
            if key not in self._followed and len(self._followed) < _MAX_FOLLOWED:
                self._followed[key] = None
            try:
                level = shared.update(key, metric, change, at=wall)
            except StoreError as exc:
                self._failed(exc)
                if learned:
                    self._pending.add(name)
            else:
                self._answered()
                self._set(name, level, at=t)
                return level
        level = change(self._levels.get(name))
        self._set(name, level, at=t)
        return level

    def _failed(self, exc: StoreError) -> None:
        if not self._failing:
            self._failing = True
            _log.warning(
                "learned quota limits are not shared while the store fails (%s); "
                "this process learns on its own until it answers",
                exc,
            )

    def _answered(self) -> None:
        if self._failing:
            self._failing = False
            _log.warning("the store answers again: learned quota limits are shared again")

    # -- limits -----------------------------------------------------------------------

    def ceiling(self, key: QuotaKey, metric: Metric, configured: int | None) -> int | None:
        """The hard limit: configured, or the server's stated value if lower."""
        return _ceiling(self._levels.get((key, metric)), configured)

    def effective(
        self, key: QuotaKey, metric: Metric, configured: int | None, *, now: float, wall: float
    ) -> int | None:
        """The limit to pace by now, applying any recovery that is due."""
        level = self._levels.get((key, metric))
        if level is None:
            return configured
        ceiling = _ceiling(level, configured)
        if ceiling is None:
            return level.effective
        if level.effective >= ceiling:
            return ceiling
        t = self._time(now, wall)
        if t - level.last_change < self.policy.recovery_period:
            return level.effective
        policy = self.policy
        steps: list[tuple[int, int]] = []  # (effective, ceiling) when this step was written

        def recover(old: Level | None) -> Level | None:
            steps.clear()
            if old is None:
                return None
            new = _recovered(old, configured, t, policy)
            if new != old:
                top = _ceiling(old, configured)
                assert top is not None  # _recovered steps only toward a ceiling
                steps.append((top if new is None else new.effective, top))
            return new

        level = self._commit(key, metric, recover, wall=wall, t=t, learned=False)
        if steps:
            effective, ceiling = steps[0]
            self._emit(
                LimitRecovered(
                    project=key.project,
                    model=key.model,
                    metric=metric,
                    effective=effective,
                    ceiling=ceiling,
                    at=wall,
                )
            )
        return _paced(level, configured)

    def learn_stated(
        self,
        key: QuotaKey,
        metric: Metric,
        stated: int,
        configured: int | None,
        *,
        now: float,
        wall: float,
    ) -> LimitLearned | None:
        """The server stated its limit (quotaValue): pace by it from now on."""
        t = self._time(now, wall)
        policy = self.policy
        news: list[int | None] = []  # the limit paced by before, when this was news

        def learn(old: Level | None) -> Level | None:
            news.clear()
            current = _recovered(old, configured, t, policy) if old is not None else None
            previous = _paced(current, configured)
            if current is not None and current.stated == stated and current.effective <= stated:
                return old  # already known: nothing to write
            if previous is None or previous > stated:
                news.append(previous)
            effective = stated if current is None else min(current.effective, stated)
            return Level(effective=effective, stated=stated, last_change=t, last_cut=t)

        self._commit(key, metric, learn, wall=wall, t=t, learned=True)
        if not news:
            return None  # nothing new: we were already pacing at or below it
        return self._emit(
            LimitLearned(
                project=key.project,
                model=key.model,
                metric=metric,
                enforced=stated,
                configured=configured,
                previous=news[0],
                source="quota_value",
                at=wall,
            )
        )

    def cut(
        self,
        key: QuotaKey,
        metric: Metric,
        configured: int | None,
        *,
        now: float,
        wall: float,
        booked_at: float,
        floor: int = 1,
        to: int | None = None,
    ) -> LimitLearned | None:
        """A 429 came although the ledger had room: cut the effective limit (by
        `decrease`, or to `to`), never below `floor` (the server has just admitted
        that many: the limit is not lower).

        Requests booked before the previous cut were paced by the old limit; their
        429s say nothing new, so one burst cuts once. Shared, the same holds for a
        cut this process had not seen yet (made by another): its requests were paced
        without it, so their 429s are that same burst.
        """
        t = self._time(now, wall)
        # `booked_at` is on the booking limiter's monotonic clock: move it to `t`'s.
        booked = booked_at if self._shared is None else booked_at + (wall - now)
        seen = self._levels.get((key, metric))
        seen_cut = seen.last_cut if seen is not None else -math.inf
        seen_at = self._seen_at.get((key, metric), -math.inf)
        policy = self.policy
        cuts: list[tuple[int, int]] = []  # (previous, lowered) when this cut was written

        def lower(old: Level | None) -> Level | None:
            cuts.clear()
            current = _recovered(old, configured, t, policy) if old is not None else None
            previous = _paced(current, configured)
            if previous is None:
                return old  # nothing to cut from: no limit is known yet
            if current is not None and (
                booked < current.last_cut
                or current.last_cut > seen_cut  # a cut this process has not paced by yet
                or (current.last_cut == seen_cut and booked < seen_at)
            ):
                return old
            target = math.floor(previous * policy.decrease) if to is None else to
            lowered = max(1, floor, target)
            if lowered >= previous:
                # The evidence puts the limit where we pace: no step up for now.
                return _held(current, configured, t)
            cuts.append((previous, lowered))
            stated = current.stated if current is not None else None
            return Level(effective=lowered, stated=stated, last_change=t, last_cut=t)

        self._commit(key, metric, lower, wall=wall, t=t, learned=True)
        if not cuts:
            return None
        previous, lowered = cuts[0]
        return self._emit(
            LimitLearned(
                project=key.project,
                model=key.model,
                metric=metric,
                enforced=lowered,
                configured=configured,
                previous=previous,
                source="unexpected_429",
                at=wall,
            )
        )

    def hold(
        self, key: QuotaKey, metric: Metric, configured: int | None, *, now: float, wall: float
    ) -> None:
        """A 429 that may be a limit below the level paced by, not proven yet:
        restart the recovery of a cut level, so it does not step up meanwhile."""
        t = self._time(now, wall)
        policy = self.policy

        def keep(old: Level | None) -> Level | None:
            if old is None:
                return None
            return _held(_recovered(old, configured, t, policy), configured, t)

        if (key, metric) in self._levels:
            self._commit(key, metric, keep, wall=wall, t=t, learned=False)

    def lift(
        self,
        key: QuotaKey,
        metric: Metric,
        configured: int | None,
        *,
        to: int,
        now: float,
        wall: float,
    ) -> None:
        """The server has just admitted `to` in a minute: the limit is not lower, so
        a level cut below that (by answers still in flight at the cut) goes up to it."""
        t = self._time(now, wall)
        level = self._levels.get((key, metric))
        if level is None or level.effective >= to:
            return

        def up(old: Level | None) -> Level | None:
            if old is None or old.effective >= to:
                return old
            ceiling = _ceiling(old, configured)
            if ceiling is not None and to >= ceiling:
                return None if old.stated is None else replace(old, effective=ceiling)
            return replace(old, effective=to)

        self._commit(key, metric, up, wall=wall, t=t, learned=False)

    def last_cut(self, key: QuotaKey, metric: Metric) -> float | None:
        """When the level paced by was last cut (its stamp), if it is cut."""
        level = self._levels.get((key, metric))
        return None if level is None else level.last_cut

    def revert(
        self,
        key: QuotaKey,
        metric: Metric,
        configured: int | None,
        *,
        now: float,
        wall: float,
        stamp: float,
    ) -> LimitRecovered | None:
        """The cut stamped `stamp` was wrong (the answers contradicted it): back to
        the ceiling at once. A later cut, by any process, is left as it is."""
        t = self._time(now, wall)
        steps: list[int] = []  # the ceiling returned to, when this was written

        def undo(old: Level | None) -> Level | None:
            steps.clear()
            if old is None or old.last_cut != stamp:
                return old
            ceiling = _ceiling(old, configured)
            if ceiling is None or old.effective >= ceiling:
                return old
            steps.append(ceiling)
            if old.stated is None:
                return None  # the configured limit applies again
            return replace(old, effective=ceiling, last_change=t)

        self._commit(key, metric, undo, wall=wall, t=t, learned=False)
        if not steps:
            return None
        return self._emit(
            LimitRecovered(
                project=key.project,
                model=key.model,
                metric=metric,
                effective=steps[0],
                ceiling=steps[0],
                at=wall,
            )
        )

    def _emit(self, event: _Event) -> _Event:
        if self._on_event is not None:
            self._on_event(event)
        return event
