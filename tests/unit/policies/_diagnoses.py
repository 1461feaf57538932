"""Diagnoses as diagnose() gives them, built directly so each test names its case."""

from __future__ import annotations

from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation

_STATUS = {
    Category.BAD_REQUEST: (400, "INVALID_ARGUMENT", False),
    Category.REQUEST_TOO_LARGE: (400, "INVALID_ARGUMENT", False),
    Category.INVALID_API_KEY: (400, "INVALID_ARGUMENT", False),
    Category.PRECONDITION: (400, "FAILED_PRECONDITION", False),
    Category.PERMISSION_DENIED: (403, "PERMISSION_DENIED", False),
    Category.PAYMENT_REQUIRED: (403, "PERMISSION_DENIED", False),
    Category.NOT_FOUND: (404, "NOT_FOUND", False),
    Category.RATE_LIMITED: (429, "RESOURCE_EXHAUSTED", True),
    Category.DAILY_QUOTA_EXHAUSTED: (429, "RESOURCE_EXHAUSTED", False),
    Category.NO_QUOTA: (429, "RESOURCE_EXHAUSTED", False),
    Category.SERVER_ERROR: (500, "INTERNAL", True),
    Category.OVERLOADED: (503, "UNAVAILABLE", True),
    Category.DEADLINE_EXCEEDED: (504, "DEADLINE_EXCEEDED", True),
    Category.BAD_GATEWAY: (502, None, True),
    Category.TIMEOUT: (None, None, True),
    Category.NETWORK: (None, None, True),
    Category.UNKNOWN: (None, None, False),
}


def diag(category: Category, *, retry_after: float | None = None) -> Diagnosis:
    http, grpc, retryable = _STATUS[category]
    quota = None
    if category in (Category.RATE_LIMITED, Category.DAILY_QUOTA_EXHAUSTED):
        quota = QuotaViolation(
            scope="minute" if category is Category.RATE_LIMITED else "day",
            unit="requests",
            tier="free",
            limit=10,
            model="gemini-2.5-flash",
            quota_id=None,
            metric=None,
        )
    return Diagnosis(
        http_status=http,
        grpc_status=grpc,
        reason=None,
        message=f"{category} for a test",
        category=category,
        retryable=retryable,
        retry_after=retry_after,
        quota=quota,
    )


def bare_429_diagnosis(
    message: str = "Resource has been exhausted (e.g. check quota).",
) -> Diagnosis:
    """A 429 with neither QuotaFailure nor RetryInfo, as diagnose() reads one."""
    return Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message=message,
        category=Category.RATE_LIMITED,
        retryable=True,
    )
