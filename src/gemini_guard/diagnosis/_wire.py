"""Reading the Gemini API's error body: `{"error": {code, message, status, details}}`.

Pure functions over already-parsed JSON. Every field may be missing or of the wrong
type (proxies, older API versions, hand-written test bodies), so each reader checks
what it gets and returns None rather than raising.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gemini_guard.diagnosis._model import QuotaViolation

__all__ = [
    "ErrorBody",
    "parse_duration",
    "parse_error_body",
    "parse_quota_id",
    "parse_spoken_duration",
    "quota_from_message",
    "retry_delay_from_message",
]


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an error body says, each field None (or empty) when it does not say it."""

    code: int | None
    status: str | None
    message: str | None
    reason: str | None
    retry_delay: float | None
    violations: tuple[QuotaViolation, ...]


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 19:
        return int(value.strip())
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_object(body: object) -> Mapping[object, object] | None:
    """The mapping that holds code/message/status, wherever the body put it."""
    if isinstance(body, Sequence) and not isinstance(body, str | bytes | bytearray):
        # The API sometimes wraps the error in a one-element JSON list.
        for item in body[:4]:
            found = _error_object(item)
            if found is not None:
                return found
        return None
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        return inner
    if isinstance(inner, Sequence) and not isinstance(inner, str | bytes | bytearray):
        return _error_object(inner)
    if isinstance(inner, str):
        # {"error": "some text"} from gateways in front of the API.
        return {"message": inner, **{k: v for k, v in body.items() if k != "error"}}
    if any(key in body for key in ("code", "message", "status", "details")):
        # The flat form: what google-genai builds for a non-JSON (HTML) error page.
        return body
    return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*s\s*$")


def parse_duration(value: object) -> float | None:
    """Seconds from a proto-JSON Duration: "37s", "0.856s", {"seconds": 37, "nanos": 5e8}."""
    seconds: float | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1))
    elif isinstance(value, Mapping):
        whole = _as_int(value.get("seconds", 0))
        nanos = _as_int(value.get("nanos", 0))
        if whole is not None and nanos is not None:
            seconds = float(whole) + nanos / 1e9
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


# The server's delay in words: "Please retry in 37.284115s.", "...retry in 856.559356ms.",
# "Your quota will reset after 5h59m59s.", "reset after 53s". The look-behind keeps a
# client's own retry log ("..._with_retry in 2.0 seconds as it raised ...", "Retrying
# after 6173ms") from passing for the server's delay.
_DELAY_PHRASE = re.compile(
    r"(?i)(?<![\w.])(?:retry|resets?)\s+(?:in|after)\s+"
    r"(?P<amount>(?:\d+h)?(?:\d+m(?!s))?\d+(?:\.\d+)?\s*(?:ms|milliseconds?|s|secs?|seconds?))"
    r"(?![a-z])"
)
_UNIT = re.compile(r"(?i)(\d+(?:\.\d+)?)\s*(ms|milliseconds?|h|m|s|secs?|seconds?)")
_UNIT_SECONDS = {"ms": 0.001, "m": 60.0, "h": 3600.0}


def parse_spoken_duration(text: str) -> float | None:
    """Seconds from "37.2s", "856ms", "5h59m59s", "2m3s", "53 seconds"."""
    total = 0.0
    found = False
    for match in _UNIT.finditer(text):
        unit = match.group(2).lower()
        key = "ms" if unit.startswith("mil") or unit == "ms" else unit[0]
        total += float(match.group(1)) * _UNIT_SECONDS.get(key, 1.0)
        found = True
    return total if found and math.isfinite(total) else None


def retry_delay_from_message(message: str) -> float | None:
    """The server's delay said in words ("Please retry in 37.284115s.", "...856.559356ms.",
    "Your quota will reset after 5h59m59s."), or the protobuf text `retry_delay {...}`."""
    match = _DELAY_PHRASE.search(message)
    if not match:
        proto = _PROTO_DELAY.search(message)
        if proto:
            return int(proto.group(1)[:12]) + int((proto.group(2) or "0")[:9]) / 1e9
        return None
    return parse_spoken_duration(match.group("amount")[:64])


def parse_quota_id(
    quota_id: str | None, metric: str | None
) -> tuple[Literal["minute", "day"], Literal["requests", "tokens"], Literal["free", "paid"]]:
    """Scope, unit and tier of a quota from its id and metric.

    Ids look like `GenerateRequestsPerDayPerProjectPerModel-FreeTier` or
    `GenerateContentInputTokensPerModelPerMinute-FreeTier`; paid-tier ids carry no
    suffix (or `-PaidTier`). The free-tier metric does not tell minute from day, so a
    quota named neither way counts as per-minute.
    """
    qid = (quota_id or "").lower()
    met = (metric or "").lower()
    both = qid + " " + met
    scope: Literal["minute", "day"] = (
        "day" if "perday" in qid or "per_day" in met or "per day" in both else "minute"
    )
    unit: Literal["requests", "tokens"] = "tokens" if "token" in both else "requests"
    tier: Literal["free", "paid"] = (
        "free" if "freetier" in qid or "free_tier" in met or "free tier" in both else "paid"
    )
    return scope, unit, tier


def _violation(raw: Mapping[object, object]) -> QuotaViolation | None:
    quota_id = _as_str(raw.get("quotaId"))
    metric = _as_str(raw.get("quotaMetric"))
    if quota_id is None and metric is None:
        return None
    scope, unit, tier = parse_quota_id(quota_id, metric)
    dims = raw.get("quotaDimensions")
    model = _as_str(dims.get("model")) if isinstance(dims, Mapping) else None
    return QuotaViolation(
        scope=scope,
        unit=unit,
        tier=tier,
        limit=_as_int(raw.get("quotaValue")),
        model=model,
        quota_id=quota_id,
        metric=metric,
    )


# "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_
#  requests, limit: 10, model: gemini-2.5-flash" -- one line per violation, in the message.
_METRIC_LINE = re.compile(
    r"Quota exceeded for metric:\s*(?P<metric>[^\s,]+)\s*,\s*limit:\s*(?P<limit>\d+)"
    r"(?:\s*,\s*model:\s*(?P<model>[A-Za-z0-9._\-]+))?"
)
# The older wording: "Quota exceeded for quota metric 'Generate Content API requests per
# minute' and limit 'GenerateContent request limit per minute for a region' of service ..."
_QUOTA_METRIC_WORDS = re.compile(
    r"Quota exceeded for quota metric '(?P<metric>[^']+)' and limit '(?P<limit>[^']+)'"
)


# The protobuf text form the older google-generativeai SDK printed:
#   [violations {\n  quota_metric: "..."\n  quota_id: "...-FreeTier"\n  quota_dimensions {
#   key: "model"\n value: "gemini-1.5-pro" } } , retry_delay {\n  seconds: 44\n}]
_PROTO_VIOLATION = re.compile(
    r'quota_metric:\s*"(?P<metric>[^"]+)"\s*quota_id:\s*"(?P<qid>[^"]+)"'
    r"(?P<rest>(?:\s*quota_dimensions\s*\{[^}]*\})*)"
)
_PROTO_MODEL = re.compile(r'key:\s*"model"\s*value:\s*"([^"]+)"')
_PROTO_DELAY = re.compile(r"retry_delay\s*\{\s*seconds:\s*(\d+)(?:\s*nanos:\s*(\d+))?")


def quota_from_message(message: str) -> tuple[QuotaViolation, ...]:
    """Violations spelled out in the message text, for bodies that carry no details."""
    found: list[QuotaViolation] = []
    for match in _PROTO_VIOLATION.finditer(message):
        scope, unit, tier = parse_quota_id(match.group("qid"), match.group("metric"))
        model = _PROTO_MODEL.search(match.group("rest") or "")
        found.append(
            QuotaViolation(
                scope=scope,
                unit=unit,
                tier=tier,
                limit=None,
                model=model.group(1) if model else None,
                quota_id=match.group("qid"),
                metric=match.group("metric"),
            )
        )
    if found:
        return tuple(found)
    for match in _METRIC_LINE.finditer(message):
        metric = match.group("metric").rstrip(".")
        scope, unit, tier = parse_quota_id(None, metric)
        found.append(
            QuotaViolation(
                scope=scope,
                unit=unit,
                tier=tier,
                limit=int(match.group("limit")[:18]),
                model=(match.group("model") or "").rstrip(".") or None,
                quota_id=None,
                metric=metric,
            )
        )
    for match in _QUOTA_METRIC_WORDS.finditer(message):
        words = f"{match.group('metric')} {match.group('limit')}".lower()
        found.append(
            QuotaViolation(
                scope="day" if "per day" in words else "minute",
                unit="tokens" if "token" in words else "requests",
                tier="free" if "free" in words else "paid",
                limit=None,
                model=None,
                quota_id=None,
                metric=match.group("metric"),
            )
        )
    return tuple(found)


def _wrapped_error(err: Mapping[object, object]) -> Mapping[object, object] | None:
    """The API's own error when a client or router wrapped it as a JSON string.

    Gemini CLI and @google/genai put the whole upstream body in `message`
    (`{"error": {"message": "{\\n  \\"error\\": {...}}", "code": 429, "status": "Too Many
    Requests"}}`); routers put it in `metadata.raw`.
    """
    candidates: list[object] = [err.get("message")]
    metadata = err.get("metadata")
    if isinstance(metadata, Mapping):
        candidates.append(metadata.get("raw"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.lstrip()[:1] in {"{", "["}:
            try:
                parsed = json.loads(candidate)
            except (ValueError, RecursionError):
                continue
            inner = _error_object(parsed)
            if inner is not None:
                return inner
    return None


def parse_error_body(body: object) -> ErrorBody | None:
    """The fields of an error body, or None when `body` is not an error body at all."""
    err = _error_object(body)
    if err is None:
        return None
    for _ in range(4):  # unwrap at most a few layers
        inner = _wrapped_error(err)
        if inner is None:
            break
        err = inner
    message = err.get("message")
    reason: str | None = None
    retry_delay: float | None = None
    violations: list[QuotaViolation] = []
    details = err.get("details")
    if isinstance(details, Sequence) and not isinstance(details, str | bytes | bytearray):
        for detail in details[:64]:
            if not isinstance(detail, Mapping):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("QuotaFailure"):
                raw_violations = detail.get("violations")
                if isinstance(raw_violations, Sequence) and not isinstance(raw_violations, str):
                    for raw in raw_violations[:64]:
                        if isinstance(raw, Mapping):
                            violation = _violation(raw)
                            if violation is not None:
                                violations.append(violation)
            elif kind.endswith("RetryInfo"):
                retry_delay = parse_duration(detail.get("retryDelay"))
            elif kind.endswith("ErrorInfo") and reason is None:
                reason = _as_str(detail.get("reason"))
            elif kind.endswith("LocalizedMessage") and not isinstance(message, str):
                message = detail.get("message")
    return ErrorBody(
        code=_as_int(err.get("code")),
        status=_as_str(err.get("status")),
        message=message if isinstance(message, str) else None,
        reason=reason,
        retry_delay=retry_delay,
        violations=tuple(violations),
    )
