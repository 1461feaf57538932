"""Events the quota limiter emits through its `on_event` hook (frozen values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LimitLearned", "LimitRecovered", "Metric", "StoreDegraded", "StoreRecovered"]

Metric = Literal["rpm", "tpm", "rpd", "tpd"]

_UNITS: dict[str, str] = {"rpm": "RPM", "tpm": "input TPM", "rpd": "RPD", "tpd": "TPD"}


@dataclass(frozen=True, slots=True)
class LimitLearned:
    """The server enforces a lower limit than the limiter used: it now paces by it.

    `source` is "quota_value" (a 429 body said so) or "unexpected_429" (a 429 came
    while the ledger had room: the limit was cut by a multiplicative decrease).
    """

    project: str
    model: str
    metric: Metric
    enforced: int
    configured: int | None
    previous: int | None
    source: Literal["quota_value", "unexpected_429"]
    at: float  # wall seconds

    @property
    def message(self) -> str:
        configured = "nothing" if self.configured is None else str(self.configured)
        return (
            f"server enforces about {self.enforced} {_UNITS[self.metric]} on {self.model} "
            f"(project {self.project}), configured {configured}"
        )


@dataclass(frozen=True, slots=True)
class LimitRecovered:
    """A quiet period passed: the effective limit went back up (never above the ceiling)."""

    project: str
    model: str
    metric: Metric
    effective: int
    ceiling: int
    at: float


@dataclass(frozen=True, slots=True)
class StoreDegraded:
    """The shared store failed; the limiter paces locally until it returns."""

    store: str  # the URL, without credentials
    error: str
    at: float


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """The shared store answers again; the limiter uses it again."""

    store: str
    at: float
