"""The vocabulary between the engine and its drivers: effects, their outcomes, a call's record.

The engine never sleeps, sends or does I/O itself: it yields one of these effects and
is resumed with what it came to. `AttemptPlan` is what one attempt must send;
`CallInfo` is what a finished call tells its caller.

Like `AttemptPlan` and `Outcome`, the effects are built several times per call and
never changed after: plain slotted dataclasses, since a frozen one costs about four
times as much to build.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gemini_guard.call.ports import Permit
from gemini_guard.diagnosis import Category, Diagnosis
from gemini_guard.errors import Attempt
from gemini_guard.policies import Breaker

if TYPE_CHECKING:
    from gemini_guard.cache.context import ContextCaching
    from gemini_guard.cache.entry import Entry
    from gemini_guard.cache.scope import CacheScope

__all__ = [
    "Admit",
    "AttemptPlan",
    "CacheEffect",
    "Call",
    "CallInfo",
    "Coalesce",
    "Confirm",
    "Effect",
    "Keep",
    "Lookup",
    "Outcome",
    "Prepare",
    "Record",
    "Release",
    "Reserve",
    "Send",
    "Settle",
    "Steps",
    "Tally",
    "Vouch",
    "Wait",
]

T = TypeVar("T")


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
    # Set when the answer returned is one the Guard judged unusable and returned
    # anyway, after the retries its policy allows (thinking used the whole output
    # budget): the category says what is wrong with it. None for a sound answer.
    quiet_failure: Category | None = None

    @property
    def attempt_count(self) -> int:
        """Requests actually sent (skipped models not counted)."""
        return sum(1 for a in self.attempts if a.sent)

    @property
    def served_by_requested(self) -> bool:
        """Whether the model the call asked for answered it (False for a fallback
        model's answer and for a failed call)."""
        return self.model is not None and (self.requested is None or self.model == self.requested)


@dataclass(slots=True)
class Wait:
    """Sleep on the call's clock."""

    seconds: float


@dataclass(slots=True)
class Reserve:
    """Ask the quota gate for a permit (answered with the `Permit` or the error)."""

    project: str
    model: str
    tokens: int
    # A pool's projects not to book on (their breaker for the model refuses).
    exclude: frozenset[str] = frozenset()
    requests: int = 1  # what the server counts the call as (a batch: its items)


@dataclass(slots=True)
class Confirm:
    """Just before sending: ask the gate whether the permit still holds (it answers
    the extra seconds to wait; 0.0 means send now)."""

    permit: Permit


@dataclass(slots=True)
class Settle:
    """A permit's attempt has ended, or never left (`sent=False`)."""

    permit: Permit
    sent: bool
    input_tokens: int | None = None
    diagnosis: Diagnosis | None = None


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
    requests: int = 1


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
    """Send one attempt through the transport."""

    plan: AttemptPlan


Effect = Wait | Reserve | Confirm | Settle | Tally | Admit | Record | Release | Send


@dataclass(slots=True)
class Outcome(Generic[T]):
    """What an effect came to: a value, or the exception it raised."""

    value: T | None = None
    error: Exception | None = None


Steps = Generator[Effect, Outcome[Any] | None, tuple[T, CallInfo]]


# The cache stage's effects (`gemini_guard.call.cache_stage`): the response cache's
# store may do I/O, and the Guard's own call is sync or async.


@dataclass(slots=True)
class Lookup:
    """Ask the response cache for the answer stored under `key` (answered with
    `(model, responses)`, or None on a miss)."""

    key: str
    scope: CacheScope


@dataclass(slots=True)
class Keep:
    """Store an answer in the response cache."""

    key: str
    entry: Entry
    ttl: float
    stream: bool


@dataclass(slots=True)
class Vouch:
    """Tell the response cache what the API said of the scope's key: accepted
    (`error` None), or the failure of a call made with it."""

    scope: CacheScope
    error: BaseException | None


@dataclass(slots=True)
class Prepare:
    """Ask context caching for a cached prefix of the request (answered with
    `(prefix, name)`, or None: send it whole)."""

    context: ContextCaching
    model: str
    contents: Any
    config: Any


@dataclass(slots=True)
class Call:
    """Make the Guard's own call (the chain, quota, retries), answered as an
    `Outcome`: the response, or the error the call failed with."""

    model: str
    contents: Any
    config: Any


@dataclass(slots=True)
class Coalesce:
    """Run `steps` as the one call of `flight` in this process, or wait for the call
    in flight (answered with `(its result, shared)`)."""

    flight: str
    steps: Generator[Any, Outcome[Any] | None, Any]


CacheEffect = Lookup | Keep | Vouch | Prepare | Call | Coalesce
