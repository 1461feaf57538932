"""Retrying one model: the policy, the backoff table, the shared budget.

Everything here is a pure function of its inputs (and of a seeded `random.Random`
for jitter), so tests pin every delay without sleeping.

- `RetryPolicy`: how many times, how long between, when to stop (presets `DEFAULT`,
  `INTERACTIVE`, `BATCH` from the troubleshooting guide).
- `compute_backoff(retry, policy, rng)`: the delay before retry number `retry`.
- `retry_delay(diagnosis, retry, policy, rng)`: the server's delay when it gave one
  (plus a little jitter so waiting clients do not return in one burst), else backoff.
- `RetryBudget`: gRPC-style retry throttling shared by every call of a Guard.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from dataclasses import dataclass
from typing import ClassVar, Literal

from gemini_guard.diagnosis._model import Category, Diagnosis

__all__ = [
    "UPSTREAM_FAILURES",
    "Jitter",
    "RetryBudget",
    "RetryPolicy",
    "RetrySlots",
    "compute_backoff",
    "retry_delay",
    "retry_spacing",
    "seconds",
]

Jitter = Literal["additive", "full", "none"]

# Failures that say the upstream itself is unwell (as opposed to "you are over your
# quota" or "your request is wrong"). These drain the retry budget and trip breakers.
# `unknown` is not among them: it is as often a local bug as a remote fault.
UPSTREAM_FAILURES: frozenset[Category] = frozenset(
    {
        Category.SERVER_ERROR,
        Category.OVERLOADED,
        Category.DEADLINE_EXCEEDED,
        Category.BAD_GATEWAY,
        Category.TIMEOUT,
        Category.NETWORK,
    }
)


def seconds(value: float | dt.timedelta, *, name: str) -> float:
    """A duration given as seconds or a timedelta, as float seconds (>= 0)."""
    s = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if s < 0:
        raise ValueError(f"{name} must be a duration >= 0 seconds, got {value!r}")
    return s


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a Guard retries one model before moving down the fallback chain.

    - `max_retries`: retries after the first attempt on the last model of the chain
      (models earlier in the chain hand over after `fallback_after` failures).
    - `base`, `cap`, `multiplier`: backoff `min(cap, base * multiplier**n)` before retry n+1.
    - `jitter`: "additive" (the guide's: add up to `base` seconds at random), "full"
      (uniform between 0 and the backoff, AWS's "full jitter") or "none".
    - `max_retry_after`: the longest server-requested delay (RetryInfo) the Guard will
      sleep; a longer one means fall back (or fail) rather than wait minutes.
    - `server_delay_jitter`: up to this many seconds are added to a server delay, so
      clients told "retry in 37s" do not all return in the same millisecond.
    - `fallback_after`: consecutive failed attempts on one model before falling back.
    - `attempt_timeout`: per-attempt limit (the SDK sets none; a request can hang).
    - `deadline`: the whole call's limit, waits included; None for no limit.
    - `shrink_on_deadline`: on a 504 or a timeout, retry once with a smaller thinking
      budget (`shrunk_thinking_budget`) and output cap (`shrunk_max_output_tokens`)
      before falling back; Gemini 2.5 models think by default, which takes time.
    """

    max_retries: int = 5
    base: float = 1.0
    cap: float = 60.0
    multiplier: float = 2.0
    jitter: Jitter = "additive"
    max_retry_after: float = 60.0
    server_delay_jitter: float = 1.0
    fallback_after: int = 3
    attempt_timeout: float | None = 60.0
    deadline: float | None = 300.0
    shrink_on_deadline: bool = True
    shrunk_thinking_budget: int = 512
    shrunk_max_output_tokens: int = 2048

    DEFAULT: ClassVar[RetryPolicy]
    INTERACTIVE: ClassVar[RetryPolicy]
    BATCH: ClassVar[RetryPolicy]

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.fallback_after < 1:
            raise ValueError(f"fallback_after must be >= 1, got {self.fallback_after!r}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if self.jitter not in ("additive", "full", "none"):
            raise ValueError(f"jitter must be 'additive', 'full' or 'none', got {self.jitter!r}")
        for name in ("base", "cap", "max_retry_after", "server_delay_jitter"):
            object.__setattr__(self, name, seconds(getattr(self, name), name=name))
        for name in ("attempt_timeout", "deadline"):
            value = getattr(self, name)
            if value is not None:
                s = seconds(value, name=name)
                if s == 0:
                    raise ValueError(f"{name} must be > 0 seconds or None, got {value!r}")
                object.__setattr__(self, name, s)
        if self.cap < self.base:
            raise ValueError(f"cap ({self.cap}) must be >= base ({self.base})")

    def with_options(self, **changes: object) -> RetryPolicy:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


RetryPolicy.DEFAULT = RetryPolicy()
RetryPolicy.INTERACTIVE = RetryPolicy(
    max_retries=3,
    cap=10.0,
    max_retry_after=10.0,
    fallback_after=2,
    attempt_timeout=20.0,
    deadline=30.0,
)
RetryPolicy.BATCH = RetryPolicy(
    max_retries=10,
    cap=120.0,
    max_retry_after=120.0,
    fallback_after=5,
    attempt_timeout=300.0,
    deadline=None,
)


def compute_backoff(retry: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait before retry number `retry` (0 for the first retry).

    The exponential part is `min(cap, base * multiplier**retry)`; jitter then spreads
    clients apart. The result never exceeds `cap`.
    """
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry!r}")
    # Clamp the exponent first: multiplier**1000 would overflow a float.
    exponential = min(policy.cap, policy.base * policy.multiplier ** min(retry, 64))
    if policy.jitter == "full":
        return rng.uniform(0.0, exponential)
    if policy.jitter == "additive":
        return min(policy.cap, exponential + rng.uniform(0.0, policy.base))
    return exponential


def retry_delay(diagnosis: Diagnosis, retry: int, policy: RetryPolicy, rng: random.Random) -> float:
    """The wait before retry number `retry` after `diagnosis`.

    The server's delay (RetryInfo / "Please retry in ...") comes first, since it knows
    when its quota window reopens; otherwise exponential backoff. Callers check
    `diagnosis.retry_after` against `policy.max_retry_after` before asking.
    """
    if diagnosis.retry_after is not None and diagnosis.retry_after > 0:
        return diagnosis.retry_after + rng.uniform(0.0, policy.server_delay_jitter)
    return compute_backoff(retry, policy, rng)


class RetryBudget:
    """gRPC-style retry throttling, shared by all calls of one Guard.

    The budget holds up to `max_tokens` tokens, starting full. Each upstream failure
    takes one token; each success gives back `token_ratio`. While the budget is at or
    below half, retries stop (fallback and first attempts still go), so an upstream
    that is down gets one request per call instead of a retry storm.

    Failures for which the server named a delay (a quota 429 with RetryInfo) are not
    charged: waiting as told is pacing, not a storm.
    """

    __slots__ = ("_lock", "_tokens", "max_tokens", "token_ratio")

    def __init__(self, *, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens!r}")
        if not 0 < token_ratio <= max_tokens:
            raise ValueError(f"token_ratio must be in (0, max_tokens], got {token_ratio!r}")
        self.max_tokens = float(max_tokens)
        self.token_ratio = float(token_ratio)
        self._tokens = float(max_tokens)
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        return self._tokens

    def allows_retry(self) -> bool:
        return self._tokens > self.max_tokens / 2

    def record_failure(self, diagnosis: Diagnosis) -> None:
        if diagnosis.retry_after is not None or diagnosis.category not in UPSTREAM_FAILURES:
            return
        with self._lock:
            self._tokens = max(0.0, self._tokens - 1.0)

    def record_success(self) -> None:
        if self._tokens >= self.max_tokens:
            return  # full, the usual state: no lock needed to leave it full
        with self._lock:
            self._tokens = min(self.max_tokens, self._tokens + self.token_ratio)

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self._tokens:g}/{self.max_tokens:g})"


def retry_spacing(diagnosis: Diagnosis) -> float:
    """Seconds between two retries of the same model after a per-minute request 429.

    A 429 says "retry in d": when the oldest request leaves the server's sliding
    window. Every waiting caller hears the same d, so without spacing they all return
    at once, one wins the single free slot and the rest draw another 429. Spacing the
    waiters by 60 / limit (the limit is in the error body) lets each one arrive as a
    slot frees. 0 when the body does not say the per-minute request limit.
    """
    quota = diagnosis.quota
    if (
        diagnosis.category is not Category.RATE_LIMITED
        or quota is None
        or quota.scope != "minute"
        or quota.unit != "requests"
        or not quota.limit
    ):
        return 0.0
    return 60.0 / quota.limit


class RetrySlots:
    """The line of calls waiting on one key's (project/model's) per-minute quota.

    After a 429 that named its delay, the Guard knows the model is full until then.
    Retries are spaced along a line (see `retry_spacing`), and a fresh call arriving
    while the line is still waiting joins its end instead of jumping it: it would only
    draw a 429 and push a waiting call past its deadline. This is the server's own
    instruction remembered, not pacing: nothing is planned before the first 429.
    """

    __slots__ = ("_lock", "_slots")

    def __init__(self) -> None:
        self._slots: dict[str, tuple[float, float]] = {}  # key -> (last slot, spacing)
        self._lock = threading.Lock()

    def schedule(self, key: str, *, now: float, delay: float, spacing: float) -> float:
        """The delay to use for a retry: `delay`, or later to keep `spacing` after the
        previous slot of `key`. Records the chosen slot."""
        if spacing <= 0:
            return delay
        with self._lock:
            at = now + delay
            previous = self._slots.get(key)
            if previous is not None:
                at = max(at, previous[0] + spacing)
            self._slots[key] = (at, spacing)
            return at - now

    def join(self, key: str, *, now: float) -> float:
        """The wait for a fresh call: 0 when nobody is waiting on `key`, else the time
        to the slot after the last one (which the call takes)."""
        with self._lock:
            previous = self._slots.get(key)
            if previous is None or previous[0] <= now:
                return 0.0
            at = previous[0] + previous[1]
            self._slots[key] = (at, previous[1])
            return at - now
