"""The pure rules: evidence about a failure in, a `Diagnosis` out.

`Evidence` is what the extractors could read from whatever they were given (a status,
a parsed body, a non-JSON page, headers, a transport failure). `classify` applies an
ordered table of rules; the first rule that matches decides the category. Nothing
here does I/O or reads the clock: an HTTP-date Retry-After needs `now` passed in.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gemini_guard.diagnosis._model import Category, Diagnosis, QuotaViolation
from gemini_guard.diagnosis._redact import redact
from gemini_guard.diagnosis._vertex import vertex_quota_from_message
from gemini_guard.diagnosis._wire import (
    parse_error_body,
    quota_from_message,
    retry_delay_from_message,
)

__all__ = [
    "GRPC_HTTP",
    "RETRYABLE",
    "Evidence",
    "classify",
    "parse_retry_after_header",
    "pick_violation",
]

Failure = Literal["timeout", "network"]

MAX_MESSAGE = 2000
MAX_CONTEXT = 20_000


@dataclass(frozen=True, slots=True)
class Evidence:
    """What could be read from the input; every field optional."""

    http_status: int | None = None
    body: object = None  # parsed JSON (dict or list) or None
    text: str | None = None  # a body that is not JSON: an HTML page, plain text
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    failure: Failure | None = None  # a transport failure: no HTTP answer at all
    grpc_status: str | None = None  # a status seen outside a body (log text)
    detail: str | None = None  # the exception's or the log line's own words
    context: str | None = None  # surrounding text (a pasted log) read for phrases only


# Which categories are worth another attempt. 501 is the one exception (see classify).
RETRYABLE: frozenset[Category] = frozenset(
    {
        Category.RATE_LIMITED,
        Category.SERVER_ERROR,
        Category.OVERLOADED,
        Category.DEADLINE_EXCEEDED,
        Category.BAD_GATEWAY,
        Category.TIMEOUT,
        Category.NETWORK,
    }
)

_GRPC = re.compile(r"^[A-Z][A-Z_]{2,40}$")
# The HTTP status Google's APIs give each canonical gRPC code (google.rpc.Code), for
# text that names only the gRPC status (Java, Go and gRPC clients print no HTTP code).
GRPC_HTTP: dict[str, int] = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}
_HTML = re.compile(r"(?is)^\s*(?:<!doctype\s+html|<html|<head|<body|<title)")
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_TAGS = re.compile(r"(?s)<[^>]*>")
_STATUS_IN_PAGE = re.compile(r"\b([45]\d\d)\b")


@dataclass(frozen=True, slots=True)
class Facts:
    """The normalised view the rules look at."""

    http_status: int | None
    grpc_status: str | None
    reason: str | None
    message: str
    lowered: str  # message and reason, lower-cased, for phrase rules
    violations: tuple[QuotaViolation, ...]
    failure: Failure | None
    is_html: bool


def _summarise_html(page: str) -> str:
    title = _TITLE.search(page)
    if title:
        words = " ".join(_TAGS.sub(" ", title.group(1)).split())
        if words:
            return words
    return " ".join(_TAGS.sub(" ", page).split())[:200]


def _has(facts: Facts, *phrases: str) -> bool:
    return any(phrase in facts.lowered for phrase in phrases)


def _is_quota(f: Facts) -> bool:
    return (
        bool(f.violations)
        or f.http_status == 429
        or f.grpc_status == "RESOURCE_EXHAUSTED"
        or _has(
            f,
            "quota exceeded",
            "resource has been exhausted",
            "exceeded your current quota",
            # Gemini Code Assist (the Gemini CLI's backend): "You have exhausted your
            # capacity on this model. Your quota will reset after 5s."
            "exhausted your capacity",
            "quota will reset after",
        )
    )


def _no_http_answer(kind: Failure) -> Callable[[Facts], bool]:
    return lambda f: f.failure == kind and f.http_status is None


def _invalid_key(f: Facts) -> bool:
    return (
        f.reason in {"API_KEY_INVALID", "API_KEY_EXPIRED"}
        or f.http_status == 401
        or f.grpc_status == "UNAUTHENTICATED"
        or _has(
            f,
            "api key not valid",
            "api key not found",
            "api_key_invalid",
            "api key expired",
            "invalid api key",
            # A leaked key is disabled for good: the fix is the same as for an invalid one.
            "reported as leaked",
        )
    )


def _payment(f: Facts) -> bool:
    return f.http_status == 402 or (
        _has(f, "prepaid", "credits are depleted", "credit balance")
        and (f.grpc_status == "RESOURCE_EXHAUSTED" or f.http_status in {402, 429})
    )


def _too_large(f: Facts) -> bool:
    return f.http_status == 413 or _has(
        f,
        "input token count",
        "exceeds the maximum number of tokens",
        "request payload size exceeds",
        "request entity too large",
        "payload too large",
    )


def _precondition(f: Facts) -> bool:
    return f.grpc_status == "FAILED_PRECONDITION" or _has(
        f,
        "user location is not supported",
        "not available in your country",
        "please enable billing",
    )


def _permission(f: Facts) -> bool:
    return (
        f.http_status == 403
        or f.grpc_status == "PERMISSION_DENIED"
        or f.reason in {"CONSUMER_SUSPENDED", "SERVICE_DISABLED", "API_KEY_SERVICE_BLOCKED"}
    )


def _overloaded(f: Facts) -> bool:
    return (
        f.http_status == 503
        or (f.http_status is None and f.grpc_status == "UNAVAILABLE")
        or (f.http_status is None and _has(f, "model is overloaded", "service unavailable"))
    )


def _deadline(f: Facts) -> bool:
    return (
        f.http_status in {408, 504}
        or (f.http_status is None and f.grpc_status == "DEADLINE_EXCEEDED")
        or (f.http_status is None and _has(f, "gateway timeout"))
    )


def _bad_gateway(f: Facts) -> bool:
    return f.http_status == 502 or (f.http_status is None and _has(f, "bad gateway"))


def _server_error(f: Facts) -> bool:
    return (f.http_status is not None and 500 <= f.http_status <= 599) or (
        f.http_status is None and f.grpc_status in {"INTERNAL", "UNKNOWN", "DATA_LOSS"}
    )


def _bad_request(f: Facts) -> bool:
    return (f.http_status is not None and 400 <= f.http_status <= 499) or (
        f.http_status is None
        and f.grpc_status in {"INVALID_ARGUMENT", "OUT_OF_RANGE", "ALREADY_EXISTS", "ABORTED"}
    )


# google.rpc.Code by number (0 is OK).
_GRPC_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
_GRPC_NUMBER = re.compile(r"\bAPP_ERROR\((\d{1,2})\)")


def _cancelled_upstream(f: Facts) -> bool:
    """499 CANCELLED that Google's backend gave up on (not a client's own cancel)."""
    if not (f.http_status == 499 or f.grpc_status == "CANCELLED"):
        return False
    return not _has(f, "locally cancelled", "cancelled by client", "context canceled", "aborterror")


def _quota_category(f: Facts) -> Category:
    chosen = pick_violation(f.violations)
    if chosen is not None and chosen.limit == 0:
        return Category.NO_QUOTA
    # "Gemini 2.5 Pro Preview doesn't have a free quota tier." -- a zero limit in words.
    if _has(f, "have a free quota tier", "free_tier_not_available", "limit: 0,"):
        return Category.NO_QUOTA
    if chosen is not None and chosen.scope == "day":
        return Category.DAILY_QUOTA_EXHAUSTED
    return Category.RATE_LIMITED


# The table. Order matters: the first matching rule decides. Specific causes that can
# hide behind a generic status (a bad key behind 400, credits behind 429, a region
# problem behind 400) come before the status rules.
RULES: tuple[tuple[str, Callable[[Facts], bool], Category | Callable[[Facts], Category]], ...] = (
    ("timeout without an HTTP answer", _no_http_answer("timeout"), Category.TIMEOUT),
    ("connection failure", _no_http_answer("network"), Category.NETWORK),
    ("API key rejected", _invalid_key, Category.INVALID_API_KEY),
    ("prepaid credits depleted", _payment, Category.PAYMENT_REQUIRED),
    ("request too large", _too_large, Category.REQUEST_TOO_LARGE),
    ("quota", _is_quota, _quota_category),
    ("billing or region precondition", _precondition, Category.PRECONDITION),
    ("permission denied", _permission, Category.PERMISSION_DENIED),
    (
        "not found",
        lambda f: f.http_status == 404 or f.grpc_status == "NOT_FOUND",
        Category.NOT_FOUND,
    ),
    # Under load Google's backend cancels requests itself (499, reason backendError):
    # the service's failure, worth a retry, although 499 is a 4xx.
    ("cancelled upstream", _cancelled_upstream, Category.SERVER_ERROR),
    ("overloaded", _overloaded, Category.OVERLOADED),
    ("deadline exceeded", _deadline, Category.DEADLINE_EXCEEDED),
    ("bad gateway", _bad_gateway, Category.BAD_GATEWAY),
    ("server error", _server_error, Category.SERVER_ERROR),
    ("bad request", _bad_request, Category.BAD_REQUEST),
    ("timeout", lambda f: f.failure == "timeout", Category.TIMEOUT),
    ("network", lambda f: f.failure == "network", Category.NETWORK),
)


def pick_violation(violations: tuple[QuotaViolation, ...]) -> QuotaViolation | None:
    """The violation that decides: a zero limit over a per-day one over a per-minute one."""
    if not violations:
        return None
    for violation in violations:
        if violation.limit == 0:
            return violation
    for violation in violations:
        if violation.scope == "day":
            return violation
    return violations[0]


def parse_retry_after_header(value: str, *, now: float | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds, or an HTTP date (needs `now`)."""
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return seconds if seconds >= 0 else None
    if now is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _http_from_page(page: str) -> int | None:
    title = _TITLE.search(page)
    match = _STATUS_IN_PAGE.search(title.group(1) if title else page[:500])
    return int(match.group(1)) if match else None


def classify(evidence: Evidence, *, now: float | None = None) -> Diagnosis:
    """Apply the rules to `evidence`. Pure; `now` only dates an HTTP-date Retry-After."""
    body = parse_error_body(evidence.body)
    http = evidence.http_status
    if http is None and body is not None and body.code is not None and 100 <= body.code <= 599:
        http = body.code
    if http is not None and not 100 <= http <= 599:
        http = None

    grpc: str | None = None
    if body is not None and body.status and _GRPC.match(body.status):
        grpc = body.status
    elif evidence.grpc_status and _GRPC.match(evidence.grpc_status):
        grpc = evidence.grpc_status
    if grpc is None and body is not None:
        # "RPC Failure: ... APP_ERROR(14) The model is overloaded." relayed under an
        # HTTP phrase ("Bad Request"): the numeric gRPC code is the real status.
        numbered = _GRPC_NUMBER.search(body.message or "")
        if numbered and int(numbered.group(1)) < len(_GRPC_NAMES):
            grpc = _GRPC_NAMES[int(numbered.group(1))]
            http = GRPC_HTTP.get(grpc, http)
    if http is None and grpc is not None and evidence.failure is None:
        http = GRPC_HTTP.get(grpc)

    message = body.message if body is not None and body.message else None
    page = evidence.text if evidence.text is not None else None
    is_html = False
    for candidate in (message, page):
        if candidate is not None and _HTML.match(candidate):
            is_html = True
            if http is None:
                http = _http_from_page(candidate)
            if candidate is message:
                message = _summarise_html(candidate)
            else:
                page = _summarise_html(candidate)
    if message is None:
        message = page or evidence.detail or ""
    message = message.strip()
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"

    reason = body.reason if body is not None else None
    context = (evidence.context or "")[:MAX_CONTEXT]
    violations = body.violations if body is not None else ()
    if not violations:
        violations = (
            quota_from_message(message)
            or quota_from_message(context)
            or vertex_quota_from_message(message)
        )

    facts = Facts(
        http_status=http,
        grpc_status=grpc,
        reason=reason,
        message=message,
        lowered=f"{message}\n{reason or ''}\n{evidence.detail or ''}\n{context}".lower(),
        violations=violations,
        failure=evidence.failure,
        is_html=is_html,
    )
    category = Category.UNKNOWN
    for _name, matches, outcome in RULES:
        if matches(facts):
            category = outcome if isinstance(outcome, Category) else outcome(facts)
            break

    retry_after = body.retry_delay if body is not None else None
    if retry_after is None:
        retry_after = retry_delay_from_message(message)
    if retry_after is None and context:
        retry_after = retry_delay_from_message(context)
    if retry_after is None:
        header = evidence.headers.get("retry-after")
        if header:
            retry_after = parse_retry_after_header(header, now=now)

    retryable = category in RETRYABLE and http != 501
    quota = pick_violation(violations) if category in _QUOTA_CATEGORIES else None
    return Diagnosis(
        http_status=http,
        grpc_status=grpc,
        reason=reason,
        message=redact(message),
        category=category,
        retryable=retryable,
        retry_after=retry_after,
        quota=quota,
    )


_QUOTA_CATEGORIES = frozenset(
    {Category.RATE_LIMITED, Category.DAILY_QUOTA_EXHAUSTED, Category.NO_QUOTA}
)
