"""Finding the error inside text people paste: a JSON body, the line google-genai's
exception prints (`429 RESOURCE_EXHAUSTED. {'error': {...}}`, a Python dict repr), a
whole traceback, a log line, a proxy's HTML page, or just a status code.
"""

from __future__ import annotations

import ast
import json
import re

from gemini_guard.diagnosis._classify import Evidence, Failure
from gemini_guard.diagnosis._wire import parse_error_body

__all__ = ["BODY_START", "MAX_TEXT", "balanced_end", "evidence_from_text", "relayed_evidence"]

# The whole text is read up to this size (matching grows with the text, so it is
# bounded); beyond it, only its end, where a traceback puts the error. `diagnose_log` and the
# CLI say when a text was cut.
MAX_TEXT = 2_000_000
# Bodies tried, counted from the end: the last error of a log is the one that counts.
MAX_CANDIDATES = 64

# Where an embedded error object may begin: `{"error":`, `{'error':`, `[{"error":`, or the
# flat `{'message': ..., 'status': ...}` google-genai builds for non-JSON pages.
_BODY_START = re.compile(r"""[\[{]\s*(?:\{\s*)?['"](?:error|code|message|status)['"]\s*:""")
# google-genai's exception text: "429 RESOURCE_EXHAUSTED. " or "502 Bad Gateway. " right
# before the dict.
_SDK_PREFIX = re.compile(r"(\d{3}) ([A-Za-z_ ]{2,40}|None)\.\s*$")
_BARE_CODE = re.compile(r"^\s*(\d{3})\s*$")
_HTTP_STATUS = re.compile(
    r"(?i)(?:HTTP/\d(?:\.\d)?\s+|status(?:[ _]?code)?\s*[=:]\s*|error code:\s*|"
    r"got status:?\s*|\[)([1-5]\d\d)\b"
)
_STATUS_PHRASE = re.compile(
    r"(?i)\b([45]\d\d)\s*(?:[-:]\s*)?(?:too many requests|service unavailable|bad gateway|"
    r"gateway timeout|internal server error|bad request|forbidden|not found|unauthorized|"
    r"payment required|request timeout|payload too large|deadline exceeded|gateway time-out|"
    r"client error|server error)\b"
)
_SDK_LINE = re.compile(r"(?m)\b([1-5]\d\d) ([A-Z][A-Z_]{2,40})\.")
# "google.api_core.exceptions.FailedPrecondition: 400 User location is not supported",
# "Inference Exception: 400 API key expired": an exception name, a colon, the status.
# "429 You exceeded your current quota, ..." at the start of a line.
_LEADING_CODE = re.compile(r"(?m)^\s*([1-5]\d\d)\s+[A-Z][a-z]")
_AFTER_EXCEPTION = re.compile(r"(?:[A-Za-z]|\]):\s+([1-5]\d\d)\s+[A-Za-z]")
_GRPC_WORD = re.compile(
    r"\b(RESOURCE_EXHAUSTED|UNAVAILABLE|DEADLINE_EXCEEDED|INVALID_ARGUMENT|"
    r"FAILED_PRECONDITION|PERMISSION_DENIED|NOT_FOUND|UNAUTHENTICATED|INTERNAL|CANCELLED|"
    r"UNIMPLEMENTED|OUT_OF_RANGE|ABORTED|DATA_LOSS)\b"
)
# Go's gRPC status text: "rpc error: code = ResourceExhausted desc = ...".
_GO_CODE = re.compile(r"\bcode\s*=\s*([A-Z][A-Za-z]{2,30})\s+desc\s*=")
_TIMEOUT_WORDS = re.compile(
    r"(?i)\b(?:ReadTimeout|ConnectTimeout|WriteTimeout|PoolTimeout|TimeoutException|"
    r"TimeoutError|ServerTimeoutError|ReadTimeoutError|ConnectTimeoutError|socket\.timeout|"
    r"timed out|ETIMEDOUT)\b"
)
_NETWORK_WORDS = re.compile(
    r"(?i)(?:\b(?:ConnectionResetError|ConnectionRefusedError|ConnectionAbortedError|"
    r"ConnectError|RemoteProtocolError|ServerDisconnectedError|ClientConnectorError|"
    r"ClientOSError|ProtocolError|NewConnectionError|MaxRetryError|ChunkedEncodingError|"
    r"IncompleteRead|gaierror|SSLError|ECONNRESET|ECONNREFUSED|ENOTFOUND|EAI_AGAIN)\b|"
    r"connection reset|connection refused|connection aborted|server disconnected|"
    r"name or service not known|temporary failure in name resolution|getaddrinfo failed|"
    r"nodename nor servname|fetch failed|socket hang up|network is unreachable|"
    r"eof occurred in violation of protocol)"
)
# The last line of a traceback: "package.module.SomeError: what happened".
_EXCEPTION_LINE = re.compile(
    r"(?m)^\s*([A-Za-z_][\w.]*(?:Error|Exception|Timeout|Exhausted))(?::\s*(.*))?$"
)
_FAILURE_LINE = re.compile(
    r"(?i)\b(?:error|failed|failure|exception|exhausted|overloaded|unavailable|denied|"
    r"invalid|quota|timed out|[45]\d\d)\b"
)
_HTML_START = re.compile(r"(?is)<!doctype\s+html|<html[\s>]")


def _balanced_end(text: str, start: int) -> int | None:
    """Index after the bracket that closes the one at `start`, skipping quoted strings."""
    depth = 0
    quote: str | None = None
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


BODY_START = _BODY_START
balanced_end = _balanced_end


def _parse_literal(snippet: str) -> object:
    """A JSON value or a Python literal (what the SDK prints), or None."""
    try:
        return json.loads(snippet)
    except (ValueError, RecursionError):
        pass
    try:
        # literal_eval evaluates no code: only strings, numbers, containers and constants.
        return ast.literal_eval(snippet)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _looks_like_error(value: object) -> bool:
    if isinstance(value, list) and value:
        return _looks_like_error(value[0])
    if not isinstance(value, dict):
        return False
    return "error" in value or ("message" in value and ("status" in value or "code" in value))


def _embedded_body(text: str) -> tuple[object, int] | None:
    """The last error object embedded in `text`, with where it starts."""
    starts = [m.start() for m in _BODY_START.finditer(text)]
    found: tuple[object, int] | None = None
    taken_until = -1
    for start in starts[-MAX_CANDIDATES:]:
        if start < taken_until:
            continue  # inside an object already parsed
        end = _balanced_end(text, start)
        if end is None:
            continue
        value = _parse_literal(text[start:end])
        if _looks_like_error(value):
            found = (value, start)
            taken_until = end
    return found


def _failure_in(text: str) -> Failure | None:
    if _TIMEOUT_WORDS.search(text):
        return "timeout"
    if _NETWORK_WORDS.search(text):
        return "network"
    return None


def _key_line(text: str) -> str:
    """The line that says what went wrong: a traceback's last exception line, if any."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return text.strip()
    matches = list(_EXCEPTION_LINE.finditer(text))
    if matches:
        return matches[-1].group(0).strip()
    # A log's first lines are often routine ("Loaded cached credentials."): the line
    # that names a failure says more; else a multi-line message starts with what it is.
    for line in lines:
        if _FAILURE_LINE.search(line):
            return line.strip()
    return lines[0].strip()


def evidence_from_text(text: str) -> Evidence:
    """Everything `text` tells about a failure; an empty Evidence when it tells nothing."""
    if len(text) > MAX_TEXT:
        text = text[-MAX_TEXT:]
    stripped = text.strip()
    if not stripped:
        return Evidence()

    bare = _BARE_CODE.match(stripped)
    if bare:
        return Evidence(http_status=int(bare.group(1)))

    try:
        whole = json.loads(stripped)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, dict | list):
        return relayed_evidence(whole) or Evidence(body=whole)

    if _HTML_START.search(stripped[:2000]):
        page = stripped[_HTML_START.search(stripped[:2000]).start() :]  # type: ignore[union-attr]
        status = _status_in(stripped)
        return Evidence(http_status=status, text=page)

    embedded = _embedded_body(stripped)
    if embedded is not None:
        body, start = embedded
        before = stripped[max(0, start - 120) : start]
        prefix = _SDK_PREFIX.search(before)
        http: int | None = None
        grpc: str | None = None
        if prefix:
            http = int(prefix.group(1))
            grpc = prefix.group(2) if prefix.group(2).isupper() else None
        else:
            http = _status_in(before)
        return Evidence(http_status=http, body=body, grpc_status=grpc)

    http = _status_in(stripped)
    failure = _failure_in(stripped) if http is None else None
    return Evidence(
        http_status=http,
        grpc_status=_grpc_in(stripped),
        failure=failure,
        detail=_key_line(stripped),
        context=stripped[-20_000:],
    )


def relayed_evidence(body: object) -> Evidence | None:
    """The API's error when another client relayed it as text inside its own JSON.

    Dify, plugin hosts and proxies put the SDK's line in their `message`:
    `{"error_type": "ClientError", "message": "400 INVALID_ARGUMENT. {'error': {...}}"}`.
    Such an outer object has no numeric code and no gRPC status of its own, so its
    message is read as text; a real error body is left alone.
    """
    outer = parse_error_body(body)
    if outer is None or not outer.message or "{" not in outer.message:
        return None
    if outer.code is not None and outer.status is not None and outer.status.isupper():
        return None
    inner = evidence_from_text(outer.message)
    return inner if inner.body is not None else None


def _grpc_in(text: str) -> str | None:
    words = _GRPC_WORD.search(text)
    if words:
        return words.group(1)
    go = _GO_CODE.search(text)
    if go:
        # ResourceExhausted -> RESOURCE_EXHAUSTED
        return re.sub(r"(?<!^)(?=[A-Z])", "_", go.group(1)).upper()
    return None


def _status_in(text: str) -> int | None:
    for pattern in (_SDK_LINE, _HTTP_STATUS, _STATUS_PHRASE, _AFTER_EXCEPTION, _LEADING_CODE):
        matches = list(pattern.finditer(text))
        if matches:
            return int(matches[-1].group(1))
    return None
