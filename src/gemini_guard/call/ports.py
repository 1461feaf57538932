"""The ports of the request path: what the engine needs from the world, as protocols.

- `QuotaGate` (with `Permit`, `TallyingGate`, `NoQuota`): the seam to the quota
  limiter. The engine asks it for a permit before every attempt and settles it when
  the attempt ends; `gemini_guard.quota` implements it. Owned by neither side, so the
  request path stays one-directional: the engine knows only these protocols, the
  limiter knows nothing of the engine.
- `BreakerStore` / `AsyncBreakerStore`: where breaker state lives. They are defined
  next to the pure breaker logic (`gemini_guard.policies.breaker`), which applies
  them, and named here so that every port of the path can be found in one place.
- `Transport` / `AsyncTransport`: sends one attempt (`AttemptPlan`) and returns what
  came back, raising what failed; the drivers take its `send`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from gemini_guard.policies.breaker import AsyncBreakerStore, BreakerStore

if TYPE_CHECKING:
    from gemini_guard.call.effects import AttemptPlan
    from gemini_guard.diagnosis import Diagnosis

__all__ = [
    "AsyncBreakerStore",
    "AsyncTransport",
    "BreakerStore",
    "NoQuota",
    "Permit",
    "QuotaGate",
    "TallyingGate",
    "Transport",
]

T_co = TypeVar("T_co", covariant=True)


class Transport(Protocol[T_co]):
    """Sends one attempt. Raises what the attempt failed with (an SDK `APIError`, a
    timeout, a broken connection): the engine diagnoses it. `plan.timeout` is the
    attempt's limit in clock seconds, for the transport to enforce."""

    def send(self, plan: AttemptPlan) -> T_co: ...


class AsyncTransport(Protocol[T_co]):
    """`Transport` for asyncio callers."""

    async def send(self, plan: AttemptPlan) -> T_co: ...


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to send one request: wait `wait` seconds, confirm, send, then settle."""

    project: str
    model: str
    tokens: int  # input tokens reserved (an estimate until settled)
    wait: float  # seconds to wait before sending; 0.0 means now
    ticket: object = None  # the limiter's handle on the reservation


class QuotaGate(Protocol):
    def reserve(self, *, project: str, model: str, tokens: int) -> Permit:
        """Reserve a slot. Raises DailyQuotaExhausted when the day's quota is spent,
        QuotaWait when the wait would exceed the allowed maximum, RequestRejected when
        the request can never fit (tokens over the per-minute token limit).

        A call the server counts as several requests (a batch of embeddings: one per
        item) is reserved with `requests=n` as well; the engine passes it only then,
        so a gate that never sees such calls need not take it."""
        ...

    async def areserve(self, *, project: str, model: str, tokens: int) -> Permit:
        """`reserve` for asyncio callers (a store may do I/O)."""
        ...

    def confirm(self, permit: Permit) -> float:
        """Call after waiting `permit.wait`, just before sending: the seconds still to
        wait (0.0: send now). A permit is a plan; requests planned earlier may have
        been sent late, so the slot is checked again against what was really sent.
        On a positive answer, wait that long and confirm again, until 0.0."""
        ...

    async def aconfirm(self, permit: Permit) -> float:
        """`confirm` for asyncio callers."""
        ...

    def settle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        """The attempt ended. `sent=False`: it never left (release the slot).
        `input_tokens`: the server's count (usageMetadata), to correct the ledger.
        `diagnosis`: the failure, if any; a 429 teaches the limiter the enforced limit."""
        ...

    async def asettle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        """`settle` for asyncio callers."""
        ...


@runtime_checkable
class TallyingGate(QuotaGate, Protocol):
    """A gate that can tell when a model needs no pacing yet, and then only counts.

    With `tier="auto"` nothing is paced until the server reveals a limit, yet the
    ledger must already hold the recent requests, so that pacing starts from the
    real usage once it does. Booking, confirming and settling a permit for a key
    with no limits decides nothing; `tally` records the finished attempt in one
    step instead. A gate without these methods is simply always asked for permits.
    """

    def paces(self, project: str, model: str) -> bool:
        """Whether an attempt on (project, model) must reserve a permit now. Must be
        cheap (no I/O): the Guard asks before every attempt."""
        ...

    def tally(
        self,
        *,
        project: str,
        model: str,
        tokens: int,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
        sent_at: float | None = None,
    ) -> None:
        """An attempt sent without a permit has ended: count it (`tokens` estimated,
        `input_tokens` the server's count) and learn from its `diagnosis`. `sent_at`
        is the clock's monotonic reading when it was sent. A call counted as several
        requests is tallied with `requests=n` as well (see `QuotaGate.reserve`)."""
        ...

    async def atally(
        self,
        *,
        project: str,
        model: str,
        tokens: int,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
        sent_at: float | None = None,
    ) -> None:
        """`tally` for asyncio callers."""
        ...


class NoQuota:
    """A gate that never waits: the Guard's behaviour when pacing is off."""

    def reserve(self, *, project: str, model: str, tokens: int, requests: int = 1) -> Permit:
        return Permit(project=project, model=model, tokens=tokens, wait=0.0)

    async def areserve(self, *, project: str, model: str, tokens: int, requests: int = 1) -> Permit:
        return self.reserve(project=project, model=model, tokens=tokens)

    def confirm(self, permit: Permit) -> float:
        return 0.0

    async def aconfirm(self, permit: Permit) -> float:
        return 0.0

    def settle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        return None

    async def asettle(
        self,
        permit: Permit,
        *,
        sent: bool,
        input_tokens: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        return None
