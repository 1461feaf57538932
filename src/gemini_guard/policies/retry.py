"""Retrying one model: the policy, the backoff table, the shared budget.

Everything here is a pure function of its inputs (and of a seeded `random.Random`
for jitter), so tests pin every delay without sleeping.

- `RetryPolicy`: how many times, how long between, when to stop (presets `DEFAULT`,
  `INTERACTIVE`, `BATCH` from the troubleshooting guide).
- `compute_backoff(retry, policy, rng)`: the delay before retry number `retry`.
- `retry_delay(diagnosis, retry, policy, rng)`: the server's delay when it gave one
  (plus a little jitter so waiting clients do not return in one burst), else backoff.
- `RetryBudget`: retry throttling per model, shared by every call of a Guard: it
  stops retry storms on a model that is down, never retries on one that is flaky.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from dataclasses import dataclass
from typing import ClassVar, Literal

from gemini_guard.diagnosis import Category, Diagnosis

__all__ = [
    "UPSTREAM_FAILURES",
    "Jitter",
    "RetryBudget",
    "RetryPolicy",
    "RetrySlots",
    "bare_429",
    "compute_backoff",
    "retry_delay",
    "retry_spacing",
    "seconds",
    "spends_budget",
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
    - `fallback_after`: failed attempts on one model (503, 500, network, a bare 429)
      before the call falls back to the next; the guide says 3 to 5.
    - `attempt_timeout`: per-attempt limit (the SDK sets none; a request can hang).
    - `deadline`: the whole call's limit, waits included; None for no limit.
    - `shrink_on_deadline`: on a 504 or a timeout, retry once with a smaller thinking
      budget (`shrunk_thinking_budget`) and output cap (`shrunk_max_output_tokens`)
      before falling back; Gemini 2.5 models think by default, which takes time. An
      answer whose thinking used the whole output budget is retried once that way too.
    - `first_chunk_timeout`: a stream with no first chunk by then is a failed attempt
      (retried or fallen back); thinking models can think for tens of seconds first.
    - `stream_idle_timeout`: a started stream silent this long is broken off
      (`StreamStalled`, with the text received so far). None: no limit. On
      `guard.client` and the gateway both are one socket read limit, the longer of
      the two (an HTTP client cannot change it between the first chunk and the rest).
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
    first_chunk_timeout: float | None = 120.0
    stream_idle_timeout: float | None = 60.0

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
        for name in ("attempt_timeout", "deadline", "first_chunk_timeout", "stream_idle_timeout"):
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


def spends_budget(diagnosis: Diagnosis) -> bool:
    """Whether a retry after `diagnosis` spends from the `RetryBudget`.

    Upstream failures do, and so does a bare 429 (RESOURCE_EXHAUSTED with neither a
    QuotaFailure nor a RetryInfo: a capacity error, not a quota the server can name).
    A wait the server asked for (RetryInfo) does not: that is pacing, not a storm.
    """
    if diagnosis.retry_after is not None:
        return False
    return diagnosis.category in UPSTREAM_FAILURES or bare_429(diagnosis)


def bare_429(diagnosis: Diagnosis) -> bool:
    """A 429 that names no quota and no delay ("Resource has been exhausted (e.g.
    check quota).", Vertex's "Resource exhausted. Please try again later."): the
    server is short of capacity for the moment, like a 503."""
    return (
        diagnosis.category is Category.RATE_LIMITED
        and diagnosis.quota is None
        and diagnosis.retry_after is None
    )


class RetryBudget:
    """Retry throttling per model, shared by every call of one Guard.

    It stops retry storms, not flaky models. Each key (a "project/model") has a
    bucket of up to `max_tokens` tokens, starting full. Only a retry spends
    (`retry_cost`, after an upstream failure or a bare 429); first attempts and
    fallback hops are free. Every success on the key gives back `token_ratio`
    (gRPC's retry throttling refills on success too; AWS's retry quota spends only
    on retries). A retry is allowed while the bucket holds one retry's cost; when it
    is not, the call falls back (or fails on the last model) instead of retrying.

    Why these numbers (docs/guard.md, "Retry budget", has the whole derivation): at
    an error rate p, an attempt spends at most p (when every failure is retried) and
    earns (1 - p) * token_ratio, so the drift per attempt is at least
    (1 - p) * token_ratio - p * retry_cost. With 2 and 1 it is positive up to p = 2/3:
    +0.5 per attempt at 50%, so a flaky model keeps its retries (20 tokens are a deep
    enough reserve for the walk's bad runs); -0.7 at 90% and -1 at 100%, so an outage
    spends its 20 tokens within a few dozen attempts and then sends one request per
    call until a success pays retries back.

    Waits the server asked for (a 429 with RetryInfo) neither spend nor are held back.
    """

    __slots__ = ("_lock", "_tokens", "max_tokens", "retry_cost", "token_ratio")

    def __init__(
        self, *, max_tokens: float = 20.0, token_ratio: float = 2.0, retry_cost: float = 1.0
    ) -> None:
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens!r}")
        if not 0 < retry_cost <= max_tokens:
            raise ValueError(f"retry_cost must be in (0, max_tokens], got {retry_cost!r}")
        if not 0 < token_ratio <= max_tokens:
            raise ValueError(f"token_ratio must be in (0, max_tokens], got {token_ratio!r}")
        self.max_tokens = float(max_tokens)
        self.token_ratio = float(token_ratio)
        self.retry_cost = float(retry_cost)
        self._tokens: dict[str, float] = {}  # absent: full
        self._lock = threading.Lock()

    def tokens(self, key: str = "") -> float:
        """The tokens left in `key`'s bucket."""
        return self._tokens.get(key, self.max_tokens)

    def allows_retry(self, key: str = "") -> bool:
        return self._tokens.get(key, self.max_tokens) >= self.retry_cost

    def record_retry(self, key: str = "") -> None:
        """A retry was scheduled on `key` (never below 0: concurrent calls may both
        have seen the last token)."""
        with self._lock:
            if len(self._tokens) >= 1024 and key not in self._tokens:
                self._forget_full()
            left = self._tokens.get(key, self.max_tokens) - self.retry_cost
            self._tokens[key] = max(0.0, left)

    def record_success(self, key: str = "") -> None:
        if key not in self._tokens:
            return  # full, the usual state: no lock needed to leave it full
        with self._lock:
            tokens = self._tokens.get(key)
            if tokens is None:
                return
            tokens += self.token_ratio
            if tokens >= self.max_tokens:
                del self._tokens[key]  # full again: the bucket need not be kept
            else:
                self._tokens[key] = tokens

    def _forget_full(self) -> None:
        # Keys come from model names callers choose: keep the table bounded by
        # dropping the fullest buckets (they are the least informative).
        for key, _ in sorted(self._tokens.items(), key=lambda kv: -kv[1])[:512]:
            del self._tokens[key]

    def __repr__(self) -> str:
        spent = ", ".join(f"{k}={v:g}" for k, v in sorted(self._tokens.items()))
        return f"RetryBudget(max_tokens={self.max_tokens:g}, below full: {{{spent}}})"


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
