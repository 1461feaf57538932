"""Reading `Evidence` out of whatever diagnose() is given.

Optional HTTP libraries (httpx, the SDK's httpx2, aiohttp, requests, urllib3) are never
imported here: their types are recognised by the module and class names along the MRO,
so diagnose() costs nothing for libraries an application does not use. Every attribute
read is guarded, because a broken object must not make diagnose() raise.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from typing import Any

from gemini_guard.diagnosis._classify import Evidence, Failure
from gemini_guard.diagnosis._text import evidence_from_text, relayed_evidence

__all__ = ["evidence_from_body", "evidence_from_object"]

MAX_DEPTH = 6  # how far to follow __cause__/__context__ and wrapped responses

# Class names (anywhere in the MRO) that mean "no answer in time" / "no connection".
_TIMEOUT_NAMES = frozenset(
    {
        "TimeoutException",  # httpx, httpx2: ReadTimeout, ConnectTimeout, WriteTimeout, PoolTimeout
        "Timeout",  # requests: ReadTimeout, ConnectTimeout
        "ServerTimeoutError",  # aiohttp
        "ConnectionTimeoutError",  # aiohttp
        "SocketTimeoutError",  # aiohttp
        "TimeoutError",  # builtin (also asyncio.TimeoutError, socket.timeout), urllib3
        "ReadTimeoutError",  # urllib3
        "ConnectTimeoutError",  # urllib3
    }
)
_NETWORK_NAMES = frozenset(
    {
        "TransportError",  # httpx, httpx2: ConnectError, ReadError, RemoteProtocolError...
        "ConnectionError",  # builtin (resets, refusals) and requests
        "ClientConnectionError",  # aiohttp: ServerDisconnectedError, ClientOSError...
        "ClientPayloadError",  # aiohttp: the body broke off
        "ProtocolError",  # urllib3, http.client
        "NewConnectionError",  # urllib3
        "MaxRetryError",  # urllib3
        "ChunkedEncodingError",  # requests
        "IncompleteRead",  # http.client
        "RemoteDisconnected",  # http.client
        "gaierror",  # socket: DNS failures
        "herror",
        "SSLError",  # ssl, requests
    }
)
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNRESET",
        "ECONNREFUSED",
        "ECONNABORTED",
        "EPIPE",
        "ENETUNREACH",
        "ENETDOWN",
        "EHOSTUNREACH",
        "EHOSTDOWN",
    )
    if hasattr(errno, name)
)


def _safe_getattr(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # properties of half-built objects can raise anything
        return None


def _mro_names(obj: object) -> tuple[set[str], set[str]]:
    """(bare class names, qualified "module.Class" names) along the type's MRO."""
    bare: set[str] = set()
    qualified: set[str] = set()
    for cls in type(obj).__mro__:
        name = str(getattr(cls, "__name__", ""))
        module = str(getattr(cls, "__module__", ""))
        bare.add(name)
        qualified.add(f"{module}.{name}")
    return bare, qualified


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _headers_of(response: object) -> dict[str, str]:
    raw = _safe_getattr(response, "headers")
    if raw is None:
        return {}
    found: dict[str, str] = {}
    try:
        items = raw.items() if hasattr(raw, "items") else iter(raw)
        for count, pair in enumerate(items):
            if count > 200:
                break
            name, value = pair
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(name, str) and isinstance(value, str):
                found.setdefault(name.lower(), value)
    except Exception:
        return found
    return found


def _body_bytes(response: object) -> bytes | None:
    """The body a response object already holds; never reads from the network."""
    for name in ("content", "_content", "_body", "body"):
        try:
            value = getattr(response, name, None)
        except Exception:  # httpx: ResponseNotRead on a streamed response
            continue
        if isinstance(value, bytes | bytearray) and value:
            return bytes(value)
        if isinstance(value, str) and value:
            return value.encode("utf-8", "replace")
    return None


def evidence_from_body(
    status: int | None, body: object, headers: Mapping[str, str] | None = None
) -> Evidence:
    """Evidence from a status, a body (bytes, str or parsed JSON) and headers."""
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed: object = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict | list):
            body = parsed
        elif body.strip():
            found = evidence_from_text(body)
            return Evidence(
                http_status=status if status is not None else found.http_status,
                body=found.body,
                text=found.text if found.text is not None else body.strip()[:5000],
                headers=lowered,
                grpc_status=found.grpc_status,
            )
        else:
            return Evidence(http_status=status, headers=lowered)
    if isinstance(body, Mapping | list | tuple):
        relayed = relayed_evidence(body)
        if relayed is not None:
            return Evidence(
                http_status=status if status is not None else relayed.http_status,
                body=relayed.body,
                headers=lowered,
                grpc_status=relayed.grpc_status,
            )
        return Evidence(http_status=status, body=body, headers=lowered)
    return Evidence(http_status=status, headers=lowered)


def _from_response(response: object) -> Evidence | None:
    status = _as_status(_safe_getattr(response, "status_code"))
    if status is None:
        status = _as_status(_safe_getattr(response, "status"))
    if status is None:
        return None
    return evidence_from_body(status, _body_bytes(response), _headers_of(response))


def _failure_of(exc: BaseException) -> Failure | None:
    bare, _ = _mro_names(exc)
    if bare & _TIMEOUT_NAMES:
        return "timeout"
    if bare & _NETWORK_NAMES:
        return "network"
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return "network"
    if isinstance(exc, OSError) and exc.errno == getattr(errno, "ETIMEDOUT", None):
        return "timeout"
    return None


def _safe_str(obj: object) -> str:
    try:
        text = str(obj)
    except Exception:
        try:
            text = repr(obj)
        except Exception:
            text = f"<{type(obj).__name__}>"
    return text[:20_000]


def _exception_detail(exc: BaseException) -> str:
    text = _safe_str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _from_sdk_error(exc: BaseException) -> Evidence:
    """google.genai.errors.APIError: code, the parsed body, the response's headers."""
    status = _as_status(_safe_getattr(exc, "code"))
    details = _safe_getattr(exc, "details")
    response = _safe_getattr(exc, "response")
    headers = _headers_of(response) if response is not None else {}
    if details is None or details == {}:
        message = _safe_getattr(exc, "message")
        grpc = _safe_getattr(exc, "status")
        details = {
            "error": {
                "message": message if isinstance(message, str) else _safe_str(exc),
                "status": grpc if isinstance(grpc, str) else None,
            }
        }
    return evidence_from_body(status, details, headers)


def _from_exception(exc: BaseException, depth: int, seen: set[int]) -> Evidence | None:
    bare, qualified = _mro_names(exc)
    if "google.genai.errors.APIError" in qualified:
        return _from_sdk_error(exc)
    failure = _failure_of(exc)
    if failure is not None:
        return Evidence(failure=failure, detail=_exception_detail(exc))

    # An exception that carries an HTTP answer: httpx HTTPStatusError, requests HTTPError,
    # aiohttp ClientResponseError, google.api_core errors, other SDKs' status errors.
    response = _safe_getattr(exc, "response")
    if response is not None and response is not exc and depth < MAX_DEPTH:
        found = _from_response(response)
        if found is not None:
            return found
    status = _as_status(_safe_getattr(exc, "status_code"))
    if status is None:
        status = _as_status(_safe_getattr(exc, "status"))
    if status is None:
        status = _as_status(_safe_getattr(exc, "code"))
    if status is not None:
        body = _safe_getattr(exc, "body")
        if body is None:
            body = _safe_getattr(exc, "details")
        evidence = evidence_from_body(status, body, _headers_of(exc))
        if evidence.body is None and evidence.text is None:
            message = _safe_getattr(exc, "message")
            detail = message if isinstance(message, str) and message else _exception_detail(exc)
            return Evidence(http_status=status, headers=evidence.headers, detail=detail)
        return evidence

    # A wrapper (a retry library's error, an ExceptionGroup, `raise X from exc`):
    # what it wraps says more than the wrapper.
    if depth < MAX_DEPTH:
        inner: list[object] = []
        group = _safe_getattr(exc, "exceptions")
        if isinstance(group, tuple | list):
            inner.extend(group[:16])
        inner.append(_safe_getattr(exc, "__cause__"))
        inner.append(_safe_getattr(exc, "__context__"))
        last_attempt = _safe_getattr(exc, "last_attempt")  # tenacity.RetryError
        if last_attempt is not None:
            inner.append(_safe_getattr(last_attempt, "_exception"))
        for candidate in inner:
            if isinstance(candidate, BaseException) and id(candidate) not in seen:
                seen.add(id(candidate))
                found_inner = _from_exception(candidate, depth + 1, seen)
                if found_inner is not None:
                    return found_inner

    # Last chance: the exception's text may be a pasted SDK error or a body.
    text_evidence = evidence_from_text(_safe_str(exc))
    if (
        text_evidence.http_status is not None
        or text_evidence.body is not None
        or text_evidence.failure is not None
    ):
        return text_evidence
    del bare
    return None


def evidence_from_object(value: object) -> Evidence:
    """Evidence from anything; an Evidence with only a detail when nothing is recognised."""
    if value is None or isinstance(value, bool):
        return Evidence(detail=_safe_str(value))
    if isinstance(value, int):
        return Evidence(http_status=_as_status(value), detail=str(value)[:100])
    if isinstance(value, str):
        return evidence_from_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return evidence_from_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping | list | tuple):
        return evidence_from_body(None, value)
    if isinstance(value, BaseException):
        found = _from_exception(value, 0, {id(value)})
        return found if found is not None else Evidence(detail=_exception_detail(value))
    found_response = _from_response(value)
    if found_response is not None:
        return found_response
    return Evidence(detail=_safe_str(value)[:500])
