"""Learn the limit the server really enforces, and pace by it.

Google changes quotas without notice (the free tier was cut 50-80% on
2025-12-06/07). Two signals reveal the enforced limit:

- a 429 whose body carries `quotaValue`: the server states the limit; the
  limiter adopts it as the new ceiling at once;
- a 429 that arrives although the ledger had room: the limit must be lower than
  configured; the effective limit is cut multiplicatively (AIMD, as TCP does).

After each quiet period the effective limit recovers additively, and never above
the ceiling (the configured limit, or the stated `quotaValue` if lower). Every
change is reported as an event. This module is pure: it is given the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gemini_guard.errors import ConfigError
from gemini_guard.quota.events import LimitLearned, LimitRecovered, Metric
from gemini_guard.quota.stores.base import QuotaKey

__all__ = ["AdaptiveLimits", "AdaptivePolicy"]

_Event = TypeVar("_Event")


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    """How fast the effective limit falls and comes back.

    - `decrease`: factor applied on a 429 the ledger did not expect (0 < f < 1).
    - `recovery_period`: seconds without a cut before each step up.
    - `recovery_step`: each step adds this fraction of the ceiling (at least 1).
    """

    decrease: float = 0.7
    recovery_period: float = 60.0
    recovery_step: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.decrease < 1:
            raise ConfigError(f"adaptive.decrease={self.decrease!r} must be between 0 and 1")
        if not self.recovery_period > 0:
            raise ConfigError(
                f"adaptive.recovery_period={self.recovery_period!r} must be > 0 seconds"
            )
        if not 0 < self.recovery_step <= 1:
            raise ConfigError(f"adaptive.recovery_step={self.recovery_step!r} must be in (0, 1]")


class _Level:
    """What was learned about one metric of one ledger."""

    __slots__ = ("effective", "last_change", "last_cut", "stated")

    def __init__(self, *, effective: int, stated: int | None, at: float) -> None:
        self.effective = effective
        self.stated = stated  # the server's quotaValue, when it gave one
        self.last_change = at  # monotonic seconds of the last cut or step up
        self.last_cut = at  # monotonic seconds of the last cut


class AdaptiveLimits:
    """The effective limit per (ledger, metric): configured, learned, recovering."""

    def __init__(
        self,
        policy: AdaptivePolicy | None = None,
        *,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        self.policy = policy or AdaptivePolicy()
        self._on_event = on_event
        self._levels: dict[tuple[QuotaKey, Metric], _Level] = {}
        # How many metrics of each key have a level: `has_levels` runs per request.
        self._counts: dict[QuotaKey, int] = {}

    def has_levels(self, key: QuotaKey) -> bool:
        return key in self._counts

    def _add(self, key: QuotaKey, metric: Metric, level: _Level) -> None:
        self._levels[(key, metric)] = level
        self._counts[key] = self._counts.get(key, 0) + 1

    def _drop(self, key: QuotaKey, metric: Metric) -> None:
        del self._levels[(key, metric)]
        left = self._counts[key] - 1
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]

    def ceiling(self, key: QuotaKey, metric: Metric, configured: int | None) -> int | None:
        """The hard limit: configured, or the server's stated value if lower."""
        level = self._levels.get((key, metric))
        stated = level.stated if level is not None else None
        if stated is None:
            return configured
        return stated if configured is None else min(configured, stated)

    def effective(
        self, key: QuotaKey, metric: Metric, configured: int | None, *, now: float, wall: float
    ) -> int | None:
        """The limit to pace by now, applying any recovery that is due."""
        level = self._levels.get((key, metric))
        if level is None:
            return configured
        ceiling = self.ceiling(key, metric, configured)
        assert ceiling is not None  # a level exists only with a stated value or a cut
        if level.effective >= ceiling:
            return ceiling
        steps = math.floor((now - level.last_change) / self.policy.recovery_period)
        if steps > 0:
            step = max(1, math.floor(ceiling * self.policy.recovery_step))
            level.effective = min(ceiling, level.effective + steps * step)
            level.last_change += steps * self.policy.recovery_period
            self._emit(
                LimitRecovered(
                    project=key.project,
                    model=key.model,
                    metric=metric,
                    effective=level.effective,
                    ceiling=ceiling,
                    at=wall,
                )
            )
            if level.effective >= ceiling and level.stated is None:
                self._drop(key, metric)
        return level.effective

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
        level = self._levels.get((key, metric))
        previous = self.effective(key, metric, configured, now=now, wall=wall)
        if level is None:
            self._add(key, metric, _Level(effective=stated, stated=stated, at=now))
        else:
            level.stated = stated
            level.effective = min(level.effective, stated)
            level.last_change = level.last_cut = now
        if previous is not None and previous <= stated:
            return None  # nothing new: we were already pacing at or below it
        return self._emit(
            LimitLearned(
                project=key.project,
                model=key.model,
                metric=metric,
                enforced=stated,
                configured=configured,
                previous=previous,
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
    ) -> LimitLearned | None:
        """A 429 came although the ledger had room: cut the effective limit.

        Requests booked before the previous cut were paced by the old limit; their
        429s say nothing new, so one burst cuts once.
        """
        current = self.effective(key, metric, configured, now=now, wall=wall)
        if current is None:
            return None  # nothing to cut from: no limit is known yet
        level = self._levels.get((key, metric))
        if level is not None and booked_at < level.last_cut:
            return None
        lowered = max(1, math.floor(current * self.policy.decrease))
        if level is None:
            self._add(key, metric, _Level(effective=lowered, stated=None, at=now))
        else:
            level.effective = lowered
            level.last_change = level.last_cut = now
        return self._emit(
            LimitLearned(
                project=key.project,
                model=key.model,
                metric=metric,
                enforced=lowered,
                configured=configured,
                previous=current,
                source="unexpected_429",
                at=wall,
            )
        )

    def _emit(self, event: _Event) -> _Event:
        if self._on_event is not None:
            self._on_event(event)
        return event
