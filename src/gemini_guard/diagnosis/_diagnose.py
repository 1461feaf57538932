"""diagnose(): any failure in, a `Diagnosis` out, never an exception."""

from __future__ import annotations

from collections.abc import Mapping

from gemini_guard.diagnosis._classify import Evidence, classify
from gemini_guard.diagnosis._extract import evidence_from_body, evidence_from_object
from gemini_guard.diagnosis._model import Category, Diagnosis
from gemini_guard.diagnosis._redact import redact
from gemini_guard.diagnosis._response import diagnose_response, looks_like_response

__all__ = ["HEALTHY", "diagnose", "diagnose_http", "diagnose_response"]

# What diagnose() says of a response with nothing wrong: typed, never None.
HEALTHY = Diagnosis(
    http_status=200,
    grpc_status=None,
    reason=None,
    message="The response carries usable output.",
    category=Category.NO_PROBLEM,
    retryable=False,
)


def _now_if_needed(evidence: Evidence, now: float | None) -> float | None:
    # Only an HTTP-date Retry-After needs the wall clock; read it only then.
    if now is not None or "retry-after" not in evidence.headers:
        return now
    from gemini_guard.clock import SystemClock

    return SystemClock().time()


def _fallback(value: object) -> Diagnosis:
    try:
        words = redact(f"{type(value).__name__}: could not be read")
    except Exception:
        words = "could not be read"
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason=None,
        message=words,
        category=Category.UNKNOWN,
        retryable=False,
    )


def diagnose(error: object, *, now: float | None = None) -> Diagnosis:
    """Understand a Gemini API failure, whatever form it comes in.

    `error` may be a google-genai `errors.APIError`, the text such an error prints (or
    a whole pasted traceback or log line), a JSON error body (str, bytes, dict, or the
    one-element list the API sometimes sends), an HTTP response (httpx, httpx2,
    requests, aiohttp), a bare status code, a timeout or connection exception of those
    clients or of Python itself, a proxy's HTML error page, or a `CallFailed`. Anything
    else gives category `unknown`. It never raises.

    A successful response (a `GenerateContentResponse`, its JSON body, or a stream's
    chunks) is read for quiet failures (see `diagnose_response`); a usable one gives
    `HEALTHY`, whose category is `no_problem` and `is_problem` False.

    `now` (wall epoch seconds) is only used to turn an HTTP-date Retry-After header into
    seconds; the system clock by default.
    """
    try:
        if isinstance(error, Diagnosis):
            return error
        carried = getattr(error, "diagnosis", None) if isinstance(error, BaseException) else None
        if isinstance(carried, Diagnosis):
            return carried
        if looks_like_response(error):
            found = diagnose_response(error)
            return found if found is not None else HEALTHY
        evidence = evidence_from_object(error)
        return classify(evidence, now=_now_if_needed(evidence, now))
    except Exception:  # the contract is "never raises"; a bug here must not hide the error
        return _fallback(error)


def diagnose_http(
    status: int | None,
    body: bytes | str | Mapping[str, object] | list[object] | None,
    headers: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
) -> Diagnosis:
    """Understand one HTTP answer given as its parts: status, body, headers.

    For code that holds the raw pieces (a gateway, a proxy, an emulator test) rather
    than a response object. Never raises.
    """
    try:
        evidence = evidence_from_body(status, body, headers)
        return classify(evidence, now=_now_if_needed(evidence, now))
    except Exception:
        return _fallback(body)
