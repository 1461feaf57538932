"""diagnose() on the real objects applications hold: SDK errors, responses, exceptions."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from typing import Any

import aiohttp
import httpx
import httpx2
import pytest
import requests
from google.genai import errors

from gemini_guard import CallFailed, Category, diagnose
from gemini_guard.diagnosis import Diagnosis, diagnose_http

METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
PER_MINUTE: dict[str, Any] = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota.\nPlease retry in 37.284115s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": METRIC,
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "10",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
        ],
    }
}
OVERLOADED = {
    "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
}
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
REQUEST = httpx2.Request(
    "POST", "https://generativelanguage.googleapis.com/v1/models/m:generateContent"
)


def _sdk_error_from(response: httpx2.Response) -> errors.APIError:
    """The exception google-genai raises for `response`, built by the SDK's own code."""
    with pytest.raises(errors.APIError) as caught:
        errors.APIError.raise_for_response(response)
    return caught.value


# --- google-genai errors -----------------------------------------------------------------


def test_client_error_without_response() -> None:
    d = diagnose(errors.ClientError(429, PER_MINUTE, None))
    assert d.category is Category.RATE_LIMITED
    assert d.retry_after == 37.0
    assert d.quota is not None
    assert d.quota.limit == 10


def test_server_error_without_response() -> None:
    d = diagnose(errors.ServerError(503, OVERLOADED, None))
    assert (d.category, d.retryable, d.http_status) == (Category.OVERLOADED, True, 503)


def test_sdk_error_built_from_a_real_httpx2_response_keeps_its_headers() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
    response = httpx2.Response(429, json=body, headers={"Retry-After": "12"}, request=REQUEST)
    exc = _sdk_error_from(response)
    assert isinstance(exc, errors.ClientError)
    d = diagnose(exc)
    assert (d.category, d.retry_after, d.grpc_status) == (
        Category.RATE_LIMITED,
        12.0,
        "RESOURCE_EXHAUSTED",
    )


def test_sdk_error_for_an_html_page() -> None:
    # The SDK turns a non-JSON page into {'message': <page>, 'status': 'Bad Gateway'}.
    exc = _sdk_error_from(httpx2.Response(502, content=HTML_502, request=REQUEST))
    assert isinstance(exc, errors.ServerError)
    d = diagnose(exc)
    assert (d.category, d.retryable, d.http_status, d.grpc_status) == (
        Category.BAD_GATEWAY,
        True,
        502,
        None,
    )
    assert d.message == "502 Bad Gateway"


def test_sdk_error_with_a_list_wrapped_body() -> None:
    exc = errors.ClientError(429, [PER_MINUTE], None)
    assert diagnose(exc).category is Category.RATE_LIMITED


def test_sdk_error_with_a_per_day_violation_is_not_retryable_but_keeps_the_delay() -> None:
    body = json.loads(json.dumps(PER_MINUTE))
    body["error"]["details"][0]["violations"][0]["quotaId"] = (
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    )
    d = diagnose(errors.ClientError(429, body, None))
    assert d.category is Category.DAILY_QUOTA_EXHAUSTED
    assert d.retryable is False
    assert d.retry_after == 37.0


def test_the_text_the_sdk_error_prints() -> None:
    exc = errors.ClientError(429, PER_MINUTE, None)
    assert diagnose(str(exc)) == diagnose(exc)


def test_call_failed_hands_back_its_own_diagnosis() -> None:
    inner = diagnose(503)
    assert diagnose(CallFailed("failed", diagnosis=inner)) is inner


def test_a_diagnosis_is_returned_as_is() -> None:
    d = diagnose(429)
    assert diagnose(d) is d


# --- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_httpx_responses(module: Any) -> None:
    response = module.Response(503, json=OVERLOADED, headers={"retry-after": "7"})
    d = diagnose(response)
    assert (d.category, d.retry_after, d.grpc_status) == (Category.OVERLOADED, 7.0, "UNAVAILABLE")


def test_an_unread_streaming_response_is_diagnosed_from_its_status() -> None:
    async def chunks() -> Any:
        yield b"{}"

    response = httpx.Response(503, content=chunks())
    assert diagnose(response).category is Category.OVERLOADED


def test_requests_response() -> None:
    response = requests.Response()
    response.status_code = 429
    response._content = json.dumps(PER_MINUTE).encode()
    response.headers["Retry-After"] = "3"
    d = diagnose(response)
    assert (d.category, d.retry_after) == (
        Category.RATE_LIMITED,
        37.0,
    )  # RetryInfo beats the header


def test_http_status_error_of_httpx() -> None:
    response = httpx.Response(502, content=HTML_502, request=httpx.Request("GET", "https://x"))
    exc = httpx.HTTPStatusError("bad", request=response.request, response=response)
    assert diagnose(exc).category is Category.BAD_GATEWAY


def test_requests_http_error_carries_its_response() -> None:
    response = requests.Response()
    response.status_code = 404
    response._content = b'{"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}'
    assert diagnose(requests.HTTPError("404", response=response)).category is Category.NOT_FOUND


def test_aiohttp_client_response_error() -> None:
    exc = aiohttp.ClientResponseError(
        request_info=None,  # type: ignore[arg-type]
        history=(),
        status=429,
        message="Too Many Requests",
        headers={"Retry-After": "5"},  # type: ignore[arg-type]
    )
    d = diagnose(exc)
    assert (d.category, d.retry_after, d.http_status) == (Category.RATE_LIMITED, 5.0, 429)


def test_retry_after_as_an_http_date() -> None:
    d = diagnose_http(503, None, {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412480.0)
    assert d.retry_after == 30.0


# --- transport failures ------------------------------------------------------------------

TIMEOUTS: list[BaseException] = [
    httpx.ReadTimeout("read timed out"),
    httpx.ConnectTimeout("connect timed out"),
    httpx2.ReadTimeout("read timed out"),
    httpx2.PoolTimeout("pool"),
    requests.Timeout("timeout"),
    requests.ConnectTimeout("connect timeout"),  # also a ConnectionError: timeout wins
    aiohttp.ServerTimeoutError("timeout"),
    TimeoutError(),
    asyncio.TimeoutError(),  # noqa: UP041  (spelled the way applications catch it)
    socket.timeout("timed out"),  # noqa: UP041
    OSError(errno.ETIMEDOUT, "Connection timed out"),
]
NETWORK: list[BaseException] = [
    httpx.ConnectError("refused"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx2.ConnectError("refused"),
    httpx2.ReadError("reset"),
    requests.ConnectionError("reset"),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientConnectionError("boom"),
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    ConnectionRefusedError(),
    BrokenPipeError(),
    socket.gaierror(-2, "Name or service not known"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
]


@pytest.mark.parametrize("exc", TIMEOUTS, ids=lambda e: type(e).__module__ + "." + type(e).__name__)
def test_timeouts(exc: BaseException) -> None:
    d = diagnose(exc)
    assert (d.category, d.retryable, d.http_status) == (Category.TIMEOUT, True, None)


@pytest.mark.parametrize("exc", NETWORK, ids=lambda e: type(e).__module__ + "." + type(e).__name__)
def test_connection_failures(exc: BaseException) -> None:
    d = diagnose(exc)
    assert (d.category, d.retryable, d.http_status) == (Category.NETWORK, True, None)


def _wrapped_timeout() -> None:
    try:
        raise httpx.ReadTimeout("slow")
    except httpx.ReadTimeout as inner:
        raise RuntimeError("the call failed") from inner


def test_a_wrapper_is_seen_through_to_its_cause() -> None:
    with pytest.raises(RuntimeError) as caught:
        _wrapped_timeout()
    assert diagnose(caught.value).category is Category.TIMEOUT


def test_an_exception_group_is_searched() -> None:
    group = ExceptionGroup("many", [ValueError("x"), errors.ServerError(503, OVERLOADED, None)])
    assert diagnose(group).category is Category.OVERLOADED


def test_an_unrelated_exception_is_unknown() -> None:
    d = diagnose(KeyError("model"))
    assert (d.category, d.retryable) == (Category.UNKNOWN, False)


# --- plain values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "category", "retryable"),
    [
        (400, Category.BAD_REQUEST, False),
        (401, Category.INVALID_API_KEY, False),
        (402, Category.PAYMENT_REQUIRED, False),
        (403, Category.PERMISSION_DENIED, False),
        (404, Category.NOT_FOUND, False),
        (408, Category.DEADLINE_EXCEEDED, True),
        (409, Category.BAD_REQUEST, False),
        (413, Category.REQUEST_TOO_LARGE, False),
        (429, Category.RATE_LIMITED, True),
        (500, Category.SERVER_ERROR, True),
        (501, Category.SERVER_ERROR, False),
        (502, Category.BAD_GATEWAY, True),
        (503, Category.OVERLOADED, True),
        (504, Category.DEADLINE_EXCEEDED, True),
        (200, Category.UNKNOWN, False),
        (999, Category.UNKNOWN, False),
    ],
)
def test_bare_status_codes(code: int, category: Category, retryable: bool) -> None:
    d = diagnose(code)
    assert (d.category, d.retryable) == (category, retryable)
    assert diagnose_http(code, None).category is category


def test_a_bool_is_not_a_status() -> None:
    assert diagnose(True).category is Category.UNKNOWN


def test_diagnosis_is_frozen() -> None:
    d = diagnose(429)
    with pytest.raises(AttributeError):
        d.category = Category.UNKNOWN  # type: ignore[misc]
    assert isinstance(d, Diagnosis)
