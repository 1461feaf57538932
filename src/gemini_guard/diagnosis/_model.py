"""The values every policy decides from: `Category`, `QuotaViolation`, `Diagnosis`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Category", "Diagnosis", "QuotaViolation", "RecentRate"]


# Diagnosis.explain() is answered by the catalog of texts, which itself needs
# Diagnosis: the catalog registers itself here when gemini_guard.diagnosis loads (before
# any caller can hold a Diagnosis), so this module, at the bottom, imports nothing above.
_explainers: list[Callable[..., str]] = []


def register_explainer(explain: Callable[..., str]) -> None:
    _explainers[:] = [explain]


class Category(enum.StrEnum):
    """What kind of failure this is, by its real cause (not just its HTTP status)."""

    BAD_REQUEST = "bad_request"
    REQUEST_TOO_LARGE = "request_too_large"
    INVALID_API_KEY = "invalid_api_key"
    PRECONDITION = "precondition"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    PAYMENT_REQUIRED = "payment_required"
    RATE_LIMITED = "rate_limited"
    DAILY_QUOTA_EXHAUSTED = "daily_quota_exhausted"
    NO_QUOTA = "no_quota"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    BAD_GATEWAY = "bad_gateway"
    TIMEOUT = "timeout"
    NETWORK = "network"
    UNKNOWN = "unknown"
    # Answers that came back 200 but are not usable (see `diagnose_response`).
    PROMPT_BLOCKED = "prompt_blocked"
    RESPONSE_BLOCKED = "response_blocked"
    MALFORMED_FUNCTION_CALL = "malformed_function_call"
    EMPTY_RESPONSE = "empty_response"
    THINKING_EXHAUSTED = "thinking_exhausted"
    GENERATION_STOPPED = "generation_stopped"
    # A response with nothing wrong: what diagnose() says of a healthy answer.
    NO_PROBLEM = "no_problem"


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One quota the server says was exceeded (from `google.rpc.QuotaFailure` or the message)."""

    scope: Literal["minute", "day"]
    unit: Literal["requests", "tokens"]
    tier: Literal["free", "paid"]
    limit: int | None
    model: str | None
    quota_id: str | None
    metric: str | None


@dataclass(frozen=True, slots=True)
class RecentRate:
    """What the caller knows of its own traffic when a 429 came, for `explain`:
    `requests` sent to the model in the last minute (per project), against the
    `limit` (requests per minute) of its `tier` ("free", "tier1", ...), if known."""

    requests: int
    limit: int | None = None
    tier: str | None = None

    def __post_init__(self) -> None:
        if self.requests < 0 or (self.limit is not None and self.limit <= 0):
            raise ValueError(
                f"RecentRate(requests={self.requests!r}, limit={self.limit!r}): requests "
                "must be >= 0 and limit > 0 (or None)"
            )


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A failure, understood: what it is, whether to retry, when, and how to fix it."""

    http_status: int | None
    grpc_status: str | None
    reason: str | None
    message: str
    category: Category
    retryable: bool
    retry_after: float | None = None
    quota: QuotaViolation | None = None

    @property
    def is_problem(self) -> bool:
        """False only for a response diagnosed as healthy (`Category.NO_PROBLEM`)."""
        return self.category is not Category.NO_PROBLEM

    def explain(
        self,
        lang: Literal["en", "zh"] | str = "en",
        *,
        now: float | None = None,
        recent: RecentRate | None = None,
    ) -> str:
        """The cause and the fix for this very case, in English ("en") or Chinese ("zh").

        `now` (wall epoch seconds) dates the per-day reset; the system clock by default.
        `recent`: the caller's own rate when the failure came; a bare 429 far below the
        limit is then explained as what it is (not your quota).
        """
        if not _explainers:  # registered by gemini_guard.diagnosis as it loads
            raise RuntimeError("the explanation catalog is not loaded")
        return _explainers[0](self, lang, now=now, recent=recent)
