"""Errors of gemini-guard: one hierarchy, each error carrying what a caller needs.

    GuardError                      base of everything gemini-guard raises
    ├── ConfigError                 bad configuration, raised before anything is sent
    ├── ScenarioError               a malformed emulator scenario (names field and line)
    ├── StoreError                  a state store (SQLite, Redis) failed
    │   └── StoreDamaged            a SQLite file is damaged; retrying will not help
    ├── BudgetExceeded              the daily USD budget is spent; nothing was sent
    └── CallFailed                  a guarded call failed; carries .diagnosis and .attempts
        ├── RequestRejected         the request is wrong; it was not sent (or not retried)
        ├── AttemptsExhausted       retries used up on the last model of the chain
        ├── FallbackExhausted       every model of the chain failed
        ├── CircuitOpen             every usable model's breaker is open
        ├── DailyQuotaExhausted     the per-day quota is spent; .reset_at says when it returns
        ├── QuotaWait               waiting for quota would exceed the allowed wait
        ├── ResponseBlocked         the prompt or the answer was blocked; .response
        └── StreamInterrupted       a stream broke after its first chunk; .partial_text
            └── StreamStalled       a started stream went silent past the idle timeout

Every `CallFailed` has `.diagnosis` (the final `Diagnosis`) and `.attempts`
(one `Attempt` per request sent or skipped). Messages never contain an API key, and
the SDK error chained under a `CallFailed` is scrubbed of every known secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gemini_guard.diagnosis import Category, Diagnosis

__all__ = [
    "Attempt",
    "AttemptsExhausted",
    "BudgetExceeded",
    "CallFailed",
    "CircuitOpen",
    "ConfigError",
    "DailyQuotaExhausted",
    "FallbackExhausted",
    "GuardError",
    "QuotaWait",
    "RequestRejected",
    "ResponseBlocked",
    "ScenarioError",
    "StoreDamaged",
    "StoreError",
    "StreamInterrupted",
    "StreamStalled",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a guarded call: which model, how it ended, and the wait before it."""

    model: str
    category: Category | None  # None when the attempt succeeded
    waited: float = 0.0  # seconds slept before this attempt (backoff, server delay, quota)
    http_status: int | None = None
    project: str | None = None
    sent: bool = True  # False: the model was skipped (breaker open, quota parked)


class GuardError(Exception):
    """Base class of every error gemini-guard raises.

    Its message is redacted when it is made (every registered secret, anything that
    looks like a key), so no text built from a server's answer can carry one. Where we
    chain an SDK error as `__cause__`, it is scrubbed in place first
    (`gemini_guard.secrets.scrubbed`): a printed traceback is clean too.
    """

    def __init__(self, *args: object) -> None:
        from gemini_guard.secrets import redact

        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ConfigError(GuardError, ValueError):
    """Configuration is invalid; the message names the field, the value and what is allowed."""


class ScenarioError(GuardError, ValueError):
    """An emulator scenario file is malformed; the message names the field and line."""


class StoreError(GuardError):
    """A state store (SQLite, Redis) failed; the driver's error is the __cause__."""


class StoreDamaged(StoreError):
    """A SQLite file is damaged (not a database, a corrupt page): retrying will not
    help; the message names the file and how to recover."""


class BudgetExceeded(GuardError):
    """Today's spend reached the daily USD budget: the call was refused before sending.

    `spent_usd` and `budget_usd` are the figures; `day` is the budget's day (ISO date,
    Pacific time, like the daily quotas); `resets_at` (wall seconds) is its midnight.
    """

    def __init__(
        self, message: str, *, spent_usd: float, budget_usd: float, day: str, resets_at: float
    ) -> None:
        super().__init__(message)
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self.day = day
        self.resets_at = resets_at


class CallFailed(GuardError):
    """A guarded call failed after everything the policies allowed was tried."""

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis,
        attempts: tuple[Attempt, ...] | list[Attempt] = (),
    ) -> None:
        super().__init__(message)
        self.diagnosis = diagnosis
        self.attempts: tuple[Attempt, ...] = tuple(attempts)


class RequestRejected(CallFailed):
    """The request itself is wrong (bad argument, key, permission...): fix it, don't retry."""


class AttemptsExhausted(CallFailed):
    """The retry policy gave up on the last usable model."""


class FallbackExhausted(CallFailed):
    """Every model of the fallback chain was tried and failed."""


class CircuitOpen(CallFailed):
    """Every usable model's circuit breaker is open; no request was sent."""


class DailyQuotaExhausted(CallFailed):
    """The per-day quota is spent; nothing will pass before `reset_at` (epoch seconds)."""

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis,
        attempts: tuple[Attempt, ...] | list[Attempt] = (),
        reset_at: float,
    ) -> None:
        super().__init__(message, diagnosis=diagnosis, attempts=attempts)
        self.reset_at = reset_at


class QuotaWait(CallFailed):
    """Waiting for quota would take longer than allowed (`wait` seconds were needed)."""

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis,
        attempts: tuple[Attempt, ...] | list[Attempt] = (),
        wait: float,
    ) -> None:
        super().__init__(message, diagnosis=diagnosis, attempts=attempts)
        self.wait = wait


class StreamInterrupted(CallFailed):
    """A stream failed after its first chunk; `partial_text` is what arrived before."""

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis,
        attempts: tuple[Attempt, ...] | list[Attempt] = (),
        partial_text: str,
    ) -> None:
        super().__init__(message, diagnosis=diagnosis, attempts=attempts)
        self.partial_text = partial_text


class StreamStalled(StreamInterrupted):
    """A started stream sent nothing for longer than the idle timeout; it was broken
    off. `partial_text` is what arrived before the silence."""


class ResponseBlocked(RequestRejected):
    """The prompt or the answer was blocked (`promptFeedback.blockReason`, or a
    finishReason such as SAFETY or RECITATION): the same input is blocked again, so
    nothing is retried. `response` is the answer as it came: its JSON through
    `guard.client` and the gateway, the SDK's response object through `guard.models`."""

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis,
        attempts: tuple[Attempt, ...] | list[Attempt] = (),
        response: object = None,
    ) -> None:
        super().__init__(message, diagnosis=diagnosis, attempts=attempts)
        self.response = response


# -- errors the SDK's callers can catch too ---------------------------------------------

_dual_classes: dict[tuple[type[CallFailed], type[BaseException]], type[CallFailed]] = {}


def _dual_class(ours: type[CallFailed], theirs: type[BaseException]) -> type[CallFailed]:
    cls = _dual_classes.get((ours, theirs))
    if cls is None:
        cls = type(ours.__name__, (ours, theirs), {"__module__": ours.__module__})
        cls.__qualname__ = ours.__qualname__
        cls.__doc__ = (
            f"{ours.__doc__}\n\nAlso the SDK's `{theirs.__name__}`: code that catches "
            "google-genai's errors catches it too."
        )
        _dual_classes[(ours, theirs)] = cls
    return cls


def sdk_error(
    error: CallFailed, *, response: object = None, body: bytes | None = None
) -> CallFailed:
    """`error` as an instance of its own class AND of google-genai's `ClientError` (4xx)
    or `ServerError` (5xx and failures with no status), with the SDK's fields (`code`,
    `status`, `message`, `details`, `response`) read from the last answer's `body`.

    What `guard.client` raises: frameworks that catch the SDK's errors keep working,
    and code that catches ours still gets `.diagnosis` and `.attempts`."""
    import json

    from google.genai import errors as sdk

    from gemini_guard.secrets import scrub

    status = error.diagnosis.http_status or 0
    if status < 400:  # a 200 that carried no usable answer: the server's side
        status = 0
    theirs: type[sdk.APIError] = sdk.ClientError if 400 <= status < 500 else sdk.ServerError
    details: object = None
    if body:
        try:
            details = json.loads(scrub(body.decode("utf-8", "replace")))
        except ValueError:
            details = None
    if not isinstance(details, (dict, list)):
        details = {
            "error": {
                "code": status or 500,
                "message": str(error),
                "status": error.diagnosis.grpc_status or "UNKNOWN",
            }
        }
    cls = _dual_class(type(error), theirs)
    dual = cls.__new__(cls)
    dual.__dict__.update(error.__dict__)
    sdk.APIError.__init__(dual, status or 500, details, response)  # type: ignore[arg-type]
    dual.args = error.args  # our message, which names the cause and the attempts
    dual.__cause__ = error.__cause__
    return dual
