"""The error responses of the Gemini API, in the shapes and wording it really sends.

Each function returns an `ErrorReply`: the HTTP status, the body (a JSON-able dict,
or an HTML page for the front end's 502), and a short `reason` for the emulator's
stats and log. Wording follows bodies captured from the real API (see
docs/emulator.md for the sources and the few places where we had to choose).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gemini_guard.emulator.quota import Violation

__all__ = [
    "ErrorReply",
    "api_key_invalid",
    "bad_gateway_html",
    "cache_not_found",
    "cache_too_small",
    "cached_content_model_mismatch",
    "cancelled",
    "capacity_429",
    "credit_depleted",
    "deadline_exceeded",
    "format_retry_info",
    "format_retry_message",
    "input_too_long",
    "internal",
    "invalid_argument",
    "invalid_json",
    "invalid_value",
    "key_echoed",
    "key_leaked",
    "location_unsupported",
    "missing_key",
    "model_not_found",
    "not_found",
    "overloaded",
    "phantom_429",
    "quota_exceeded",
    "unknown_field",
]

RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
USAGE_URL = "https://ai.dev/usage?tab=rate-limit"
_TYPE = "type.googleapis.com/google.rpc."


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    body: dict[str, Any] | str
    reason: str
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def _error(
    code: int, status: str, message: str, reason: str, details: Sequence[dict[str, Any]] = ()
) -> ErrorReply:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return ErrorReply(code, {"error": error}, reason)


# -- keys and accounts ---------------------------------------------------------------


def missing_key() -> ErrorReply:
    return _error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
        "missing_key",
    )


def api_key_invalid() -> ErrorReply:
    message = "API key not valid. Please pass a valid API key."
    return _error(
        400,
        "INVALID_ARGUMENT",
        message,
        "invalid_key",
        [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
        ],
    )


# -- test fault: a server that echoes the credential it was sent -----------------------


def key_echoed(key: str) -> ErrorReply:
    """A 400 repeating `key` in every text field (scenario key state "echo")."""
    message = f"API key not valid: {key!r} (sent as key={key}). Authorization: Bearer {key}"
    return _error(
        400,
        "INVALID_ARGUMENT",
        message,
        "invalid_key",
        [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com", "key": key},
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
            {"@type": _TYPE + "DebugInfo", "detail": key},
        ],
    )


def key_leaked() -> ErrorReply:
    return _error(
        403,
        "PERMISSION_DENIED",
        "Your API key was reported as leaked. Please use another API key.",
        "leaked_key",
    )


def location_unsupported() -> ErrorReply:
    return _error(
        400,
        "FAILED_PRECONDITION",
        "User location is not supported for the API use.",
        "region_blocked",
    )


def credit_depleted() -> ErrorReply:
    # Real reports carry this message with RESOURCE_EXHAUSTED; the HTTP status is 402.
    return _error(
        402,
        "RESOURCE_EXHAUSTED",
        "Your prepayment credits are depleted. Please go to AI Studio at"
        " https://ai.studio/projects to manage your project and billing.",
        "credit_depleted",
    )


# -- request errors ------------------------------------------------------------------


def _bad_request(message: str, reason: str, *, field_path: str | None = None) -> ErrorReply:
    violation: dict[str, Any] = {"description": message}
    if field_path:
        violation = {"field": field_path, "description": message}
    return _error(
        400,
        "INVALID_ARGUMENT",
        message,
        reason,
        [{"@type": _TYPE + "BadRequest", "fieldViolations": [violation]}],
    )


def invalid_value(message: str, *, field_path: str) -> ErrorReply:
    return _bad_request(message, "bad_request", field_path=field_path)


def invalid_json(detail: str) -> ErrorReply:
    return _bad_request(f"Invalid JSON payload received. {detail}", "bad_request")


def unknown_field(names: Sequence[tuple[str, str]]) -> ErrorReply:
    """`names`: (unknown name, snake_case path of the message holding it; "" = top)."""
    lines = []
    violations = []
    for name, where in names:
        at = f" at '{where}'" if where else ""
        line = f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
        lines.append(line)
        violation: dict[str, Any] = {"description": line}
        if where:
            violation = {"field": where, "description": line}
        violations.append(violation)
    return _error(
        400,
        "INVALID_ARGUMENT",
        "\n".join(lines),
        "bad_request",
        [{"@type": _TYPE + "BadRequest", "fieldViolations": violations}],
    )


def invalid_argument(message: str, *, reason: str = "bad_request") -> ErrorReply:
    return _error(400, "INVALID_ARGUMENT", message, reason)


def input_too_long(tokens: int, limit: int) -> ErrorReply:
    return _error(
        400,
        "INVALID_ARGUMENT",
        f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({limit}).",
        "input_too_long",
    )


def model_not_found(model: str, *, version: str, method: str) -> ErrorReply:
    return _error(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version {version}, or is not supported for"
        f" {method}. Call ListModels to see the list of available models and their"
        " supported methods.",
        "model_not_found",
    )


def not_found(message: str = "Requested entity was not found.") -> ErrorReply:
    return _error(404, "NOT_FOUND", message, "not_found")


def cache_not_found() -> ErrorReply:
    return _error(
        403,
        "PERMISSION_DENIED",
        "CachedContent not found (or permission denied)",
        "cache_not_found",
    )


def cache_too_small(tokens: int, minimum: int) -> ErrorReply:
    return _error(
        400,
        "INVALID_ARGUMENT",
        f"Cached content is too small. total_token_count={tokens}, min_total_token_count={minimum}",
        "bad_request",
    )


def cached_content_model_mismatch(request_model: str, cache_model: str) -> ErrorReply:
    return _error(
        400,
        "INVALID_ARGUMENT",
        f"Model used by GenerateContent request (models/{request_model}) and CachedContent"
        f" ({cache_model}) has to be the same.",
        "bad_request",
    )


# -- quota ---------------------------------------------------------------------------


def format_retry_message(seconds: float) -> str:
    """The delay as the message text writes it: "37.284115s" or "856.559356ms"."""
    if seconds < 1:
        return f"{seconds * 1000:.6f}ms"
    return f"{seconds:.6f}s"


def format_retry_info(seconds: float) -> str:
    """RetryInfo.retryDelay in whole seconds, rounded UP.

    The real API writes whole seconds here while the message keeps the decimals.
    Rounding up means a client that waits exactly this long is never early.
    """
    return f"{math.ceil(round(seconds, 6))}s"


@dataclass(frozen=True, slots=True)
class QuotaNames:
    metric: str
    quota_id: str


def quota_names(kind: str, tier: str) -> QuotaNames:
    """The real quotaMetric and quotaId of a limit kind ("rpm", "tpm", "rpd") on a tier."""
    base = "generativelanguage.googleapis.com/"
    if tier == "free":
        requests = base + "generate_content_free_tier_requests"
        tokens = base + "generate_content_free_tier_input_token_count"
        suffix = "-FreeTier"
        tpm_id = "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    else:
        level = "" if tier == "tier1" else f"_{tier.removeprefix('tier')}"
        requests = base + f"generate_content_paid_tier{level}_requests"
        tokens = base + f"generate_content_paid_tier{level}_input_token_count"
        suffix = ""
        tpm_id = "GenerateContentPaidTierInputTokensPerModelPerMinute"
    if kind == "rpm":
        return QuotaNames(requests, f"GenerateRequestsPerMinutePerProjectPerModel{suffix}")
    if kind == "tpm":
        return QuotaNames(tokens, tpm_id)
    return QuotaNames(requests, f"GenerateRequestsPerDayPerProjectPerModel{suffix}")


def quota_exceeded(
    violations: Sequence[Violation], *, tier: str, model: str, retry_after: float
) -> ErrorReply:
    """The 429 for exceeded quotas: message, QuotaFailure, Help and RetryInfo."""
    lines = []
    items = []
    for violation in violations:
        names = quota_names(violation.kind, tier)
        lines.append(
            f"* Quota exceeded for metric: {names.metric}, limit: {violation.limit}, model: {model}"
        )
        items.append(
            {
                "quotaMetric": names.metric,
                "quotaId": names.quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": str(violation.limit),
            }
        )
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more"
        f" information on this error, head to: {RATE_LIMITS_URL}. To monitor your current"
        f" usage, head to: {USAGE_URL}. \n"
        + "\n".join(lines)
        + f"\nPlease retry in {format_retry_message(retry_after)}."
    )
    details: list[dict[str, Any]] = [
        {"@type": _TYPE + "QuotaFailure", "violations": items},
        {
            "@type": _TYPE + "Help",
            "links": [
                {"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_URL}
            ],
        },
        {"@type": _TYPE + "RetryInfo", "retryDelay": format_retry_info(retry_after)},
    ]
    reason = "+".join(v.kind for v in violations)
    return _error(429, "RESOURCE_EXHAUSTED", message, reason, details)


def phantom_429() -> ErrorReply:
    return _error(
        429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", "phantom_429"
    )


VERTEX_429_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429"


def capacity_429(*, with_reason: bool) -> ErrorReply:
    """Vertex AI's 429 under dynamic shared quota: capacity ran short, for everyone.
    No QuotaFailure, no RetryInfo; some carry the older `errors[]` list with
    `reason: rateLimitExceeded`."""
    message = f"Resource exhausted. Please try again later. Please refer to {VERTEX_429_URL}"
    reply = _error(429, "RESOURCE_EXHAUSTED", message, "capacity_429")
    if with_reason:
        assert isinstance(reply.body, dict)
        reply.body["error"]["errors"] = [
            {"message": message, "domain": "global", "reason": "rateLimitExceeded"}
        ]
    return reply


# -- server trouble ------------------------------------------------------------------


def overloaded() -> ErrorReply:
    return _error(
        503, "UNAVAILABLE", "The model is overloaded. Please try again later.", "overloaded"
    )


def internal() -> ErrorReply:
    return _error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in"
        " https://developers.generativeai.google/guide/troubleshooting",
        "internal",
    )


def cancelled() -> ErrorReply:
    """499 CANCELLED: Google's backend giving up on a request under load."""
    reply = _error(499, "CANCELLED", "The operation was cancelled.", "cancelled")
    assert isinstance(reply.body, dict)
    # The legacy errors[] list the real body carries, with reason backendError.
    reply.body["error"]["errors"] = [
        {"message": "The operation was cancelled.", "domain": "global", "reason": "backendError"}
    ]
    return reply


def deadline_exceeded() -> ErrorReply:
    return _error(
        504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", "deadline"
    )


_BAD_GATEWAY_PAGE = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">
  <title>Error 502 (Server Error)!!1</title>
  <p><b>502.</b> <ins>That\u2019s an error.</ins>
  <p>The server encountered a temporary error and could not complete your request.
  <p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>
"""


def bad_gateway_html() -> ErrorReply:
    """The Google front end's own 502 page: HTML, not JSON."""
    return ErrorReply(
        502, _BAD_GATEWAY_PAGE, "bad_gateway", content_type="text/html; charset=UTF-8"
    )
