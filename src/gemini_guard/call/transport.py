"""The guarded path at the HTTP level, as an httpx transport.

`GuardedTransport(path, inner=...)` takes each HTTP request an httpx client sends (the
google-genai SDK's, inside `guard.client`; the gateway's, for any language) and runs
it through the Guard's engine: breakers, quota, retries, the fallback chain (the model
rewritten in the path, or in the body on the OpenAI-compatible surface), the project
pool's keys. Each attempt is one request on the `inner` transport. The answer goes
back as an `httpx.Response` with two more headers, `x-gemini-guard-model` and
`x-gemini-guard-attempts`; a call that fails raises the Guard's error, which is also
the SDK's own `ClientError`/`ServerError` for the last status (`errors.sdk_error`).

Streams are retried and fall back until their first byte; after it, they pass
through as they come.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from gemini_guard.call.http import (
    Route,
    bare_model,
    config_of,
    embed_items,
    estimated_input_tokens,
    input_tokens_of_json,
    location_of,
    route_of,
    shrunk_body,
    streams,
    vertex_host,
    with_model,
)
from gemini_guard.call.info import set_last_call
from gemini_guard.call.parts import joined_response, part_requests
from gemini_guard.diagnosis import (
    Category,
    Diagnosis,
    diagnose,
    diagnose_http,
    diagnose_response,
)
from gemini_guard.errors import CallFailed, ResponseBlocked, StreamStalled, sdk_error
from gemini_guard.telemetry.spend import Usage

if TYPE_CHECKING:
    from gemini_guard.call.effects import AttemptPlan, CallInfo
    from gemini_guard.call.engine import Engine

__all__ = [
    "PARSED_BODY",
    "AsyncGuardedHttpClient",
    "GuardedHttpClient",
    "GuardedTransport",
    "PathOwner",
    "UpstreamError",
    "checked_request",
]

# A request extension: `(body, parsed)`, the request's body and its JSON as its sender
# already parsed it (the gateway parses every body to check it), so the path does not
# parse it again. Used only while the body is that same body: a request made from this
# one (a part of a split batch) carries the extension but not the body.
PARSED_BODY = "gemini_guard.parsed_body"

MODEL_HEADER = "x-gemini-guard-model"
ATTEMPTS_HEADER = "x-gemini-guard-attempts"
# On an answer returned although it is not a full one (thinking used the budget).
QUIET_HEADER = "x-gemini-guard-quiet-failure"
# Headers that describe the body as it came over the wire, not as it was read (httpx
# decodes a compressed body when it reads it).
_RESIZED = frozenset({b"content-length", b"content-encoding", b"transfer-encoding"})
_ENCODINGS = frozenset({b"content-encoding", b"transfer-encoding"})


# Set by the SDK-shaped API (`guard.models`) around the one request its call sends: it
# has checked that request and counted its input tokens with the caller's own objects
# (what `validation=` and `token_counter=` are documented to receive), so the path
# neither reads them again from the JSON nor counts again.
_checked_tokens: contextvars.ContextVar[int | Callable[[], int] | None] = contextvars.ContextVar(
    "gemini_guard_checked_tokens", default=None
)


@contextlib.contextmanager
def checked_request(tokens: int | Callable[[], int]) -> Iterator[None]:
    """The request sent inside this block was checked by its caller and reserves
    `tokens` input tokens when paced (or what the function gives, asked only when
    needed: see `Engine.steps`)."""
    token = _checked_tokens.set(tokens)
    try:
        yield
    finally:
        _checked_tokens.reset(token)


class PathOwner(Protocol):
    """What the transport needs of the Guard that owns it."""

    engine: Engine

    def chain_for(self, model: str) -> tuple[str, ...]: ...
    def key_for(self, project: str | None) -> str | None: ...
    def check_request(
        self, model: str, contents: Any, config: Any, *, priced: bool = True
    ) -> None: ...
    def finished(self, info: CallInfo, usage: Usage | None, *, failed: bool) -> None: ...
    def real_seconds(self, clock_seconds: float) -> float: ...


class UpstreamError(Exception):
    """One attempt's answer was an error: its status, headers and body, diagnosed."""

    def __init__(self, response: httpx.Response, body: bytes, diagnosis: Diagnosis) -> None:
        super().__init__(f"upstream answered {response.status_code}")
        self.response = response
        self.body = body
        self.diagnosis = diagnosis


class QuietFailure(UpstreamError):
    """A 200 whose answer is unusable (empty, blocked, thinking ate the budget...)."""


_UNREAD: Any = object()  # `_Answer.parsed` before the body's JSON is read


@dataclass(slots=True)
class _Answer:
    response: httpx.Response  # status and headers; its stream is `first` + `rest`
    body: bytes | None  # the whole body, when not a stream
    first: bytes = b""
    rest: Iterator[bytes] | AsyncIterator[bytes] | None = None
    parsed: Any = _UNREAD  # the body's JSON (None: not JSON), read once when first asked

    def json(self) -> Any:
        """The body's JSON, parsed once for every reader (the quiet-failure check, the
        engine's token count, the usage): None when the body is no JSON."""
        parsed = self.parsed
        if parsed is _UNREAD:
            parsed = self.parsed = _json_or_none(self.body) if self.body else None
        return parsed


@dataclass(slots=True)
class _Call:
    request: httpx.Request
    route: Route
    body: bytes
    parsed: Any
    streamed: bool
    tokens: int | Callable[[], int]
    requests: int = 1  # what the server counts the call as (a batch: its items)


def _input_tokens(answer: _Answer) -> int | None:
    return None if answer.body is None else input_tokens_of_json(answer.json())


def _usage(body: bytes | None) -> Usage | None:
    return _usage_of(_json_or_none(body)) if body else None


def _usage_of(parsed: Any) -> Usage | None:
    """The usage an answer's JSON reports (Gemini's or the OpenAI-compatible shape)."""
    meta = parsed.get("usageMetadata") if isinstance(parsed, dict) else None
    if isinstance(meta, dict):
        return Usage(
            input_tokens=int(meta.get("promptTokenCount", 0)),
            output_tokens=int(meta.get("candidatesTokenCount", 0)),
            thinking_tokens=int(meta.get("thoughtsTokenCount", 0)),
            cached_tokens=int(meta.get("cachedContentTokenCount", 0)),
        )
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    if isinstance(usage, dict):
        return Usage(
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
        )
    return None


def _sized_as(headers: httpx.Headers, body: bytes) -> bool:
    """Whether `headers` give `body`'s length as httpx gives it to a response it makes
    from that body: its Content-Length (none for no body), not chunked nor compressed."""
    length: bytes | None = None
    for key, value in headers.raw:
        name = key.lower()
        if name == b"content-length":
            if length is not None:
                return False
            length = value
        elif name in _ENCODINGS:
            return False
    return length == (str(len(body)).encode() if body else None)


def _plainly_usable(answer: dict[str, Any]) -> bool:
    """True when generateContent's JSON is plainly a usable answer (the usual case): no
    prompt block, and a candidate that stopped normally with visible text. False means
    "ask `diagnose_response`", which reads every field; True is never its failure."""
    feedback = answer.get("promptFeedback", answer.get("prompt_feedback"))
    if feedback is not None and (
        not isinstance(feedback, dict) or "blockReason" in feedback or "block_reason" in feedback
    ):
        return False
    candidates = answer.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else ():
        if not isinstance(candidate, dict):
            continue
        finish = candidate.get("finishReason", candidate.get("finish_reason"))
        if finish not in ("STOP", "MAX_TOKENS"):
            continue
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and part.get("thought") is not True:
                text = part.get("text")
                if isinstance(text, str) and text.strip():
                    return True
    return False


async def read_body(response: httpx.Response) -> bytes:
    """`await response.aread()`, in one step when the response's stream can hand its
    body over whole (`read_whole`: the aiohttp transport's streams can), which skips
    httpx's four layers of async generators (measured with `python -m bench gateway
    --baseline`: 357 -> 342 µs of the gateway's CPU per request). The response is
    left as `aread` leaves it (its content set, its stream consumed), so a later
    `aread` or `.content` gives the same bytes."""
    read_whole = getattr(response.stream, "read_whole", None)
    if read_whole is None or hasattr(response, "_content") or response.is_stream_consumed:
        return await response.aread()
    body: bytes = await read_whole()
    # What `aread` sets: a private attribute of httpx (stable since 0.18); the public
    # way to set it is the slow one this function exists to skip.
    response._content = body
    response.is_stream_consumed = True
    return body


def _with_extensions(request: httpx.Request, extensions: dict[str, Any]) -> httpx.Request:
    """`request` with other extensions (an attempt's timeout), sharing its URL, headers
    and read body: a copy that parses and encodes nothing again."""
    attempt = httpx.Request.__new__(httpx.Request)
    attempt.__dict__.update(request.__dict__)
    attempt.extensions = extensions
    return attempt


def _last_event(tail: bytes) -> bytes | None:
    """The JSON of the last server-sent event in `tail` (where a stream's usage is)."""
    events = [e for e in tail.replace(b"\r\n", b"\n").split(b"\n\n") if e.startswith(b"data:")]
    for event in reversed(events):
        data = event.removeprefix(b"data:").strip()
        if data and data != b"[DONE]":
            return data
    return None


class GuardedTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport (sync and async) that sends through the guarded path."""

    def __init__(
        self,
        owner: PathOwner,
        *,
        inner: httpx.BaseTransport | None = None,
        ainner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._owner = owner
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._ainner = ainner if ainner is not None else httpx.AsyncHTTPTransport()

    # -- what both drivers share --------------------------------------------------------

    def _prepare(self, request: httpx.Request, body: bytes) -> _Call:
        owner = self._owner
        checked = _checked_tokens.get()
        if checked is not None:
            _checked_tokens.set(None)  # for this request only
            # A Gemini or Vertex path names its model and action: no body to read.
            route = route_of(request.method, request.url.path, None)
            if route.kind in ("generate", "stream"):
                tokens = checked if route.paced and owner.engine.pacing else 0
                return _Call(request, route, body, None, route.kind == "stream", tokens)
        given = request.extensions.get(PARSED_BODY)
        parsed = given[1] if given is not None and given[0] is body else _UNREAD
        if parsed is _UNREAD:
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None  # not JSON: the server will say what is wrong with it
        route = route_of(request.method, request.url.path, parsed)
        if route.model is not None and route.kind in ("generate", "stream", "count"):
            contents = parsed.get("contents") if isinstance(parsed, dict) else None
            try:
                owner.check_request(
                    bare_model(route.model),
                    contents,
                    config_of(parsed),
                    priced=route.kind != "count",  # countTokens costs nothing
                )
            except CallFailed as refused:  # nothing was sent: the SDK's 400 shape too
                raise sdk_error(refused) from None
        estimate: int | Callable[[], int] = 0
        if route.paced and owner.engine.pacing:
            # Made only if the engine needs it (see `Engine.steps`).
            estimate = functools.partial(estimated_input_tokens, route, parsed)
        call = _Call(request, route, body, parsed, streams(route, parsed), estimate)
        call.requests = embed_items(route, parsed)
        return call

    def _steps(self, call: _Call) -> Any:
        route, owner = call.route, self._owner
        if route.model is None:
            chain: tuple[str, ...] = (route.label,)
        elif route.falls_back:
            chain = owner.chain_for(route.model)
        else:
            chain = (route.model,)
        return owner.engine.steps(
            chain,
            tokens=call.tokens,
            input_tokens_of=_input_tokens,
            use_quota=(route.paced or route.meter is not None) and route.model is not None,
            requests=call.requests,
            metered_as=route.meter,
            shrinks=route.shrinks,
        )

    def _attempt_request(self, call: _Call, plan: AttemptPlan) -> httpx.Request:
        original = call.request
        extensions = dict(original.extensions)
        if plan.timeout is not None:
            seconds = self._owner.real_seconds(plan.timeout)
            # The caller's own limit (the client's timeout, or the call's config) wins
            # when it is the stricter.
            own = (original.extensions.get("timeout") or {}).get("read")
            if own is not None and own < seconds:
                seconds = own
            extensions["timeout"] = {
                "connect": seconds,
                "read": seconds,
                "write": seconds,
                "pool": seconds,
            }
        key = self._owner.key_for(plan.project)
        location = location_of(plan.model)
        if (
            key is None
            and not plan.shrink
            and plan.model == (call.route.model or plan.model)
            and (location is None or vertex_host(original.url.host, location) == original.url.host)
        ):
            # The request as the caller built it (the usual attempt), its body already
            # read: only its timeout is the attempt's own, so it is not built again.
            return _with_extensions(original, extensions)
        path, body = original.url.raw_path.decode("ascii").partition("?")[0], call.body
        if call.route.model is not None:
            path, body = with_model(path, body, call.route, plan.model)
        if plan.shrink:  # by the owner's retry policy, as it is now
            policy = self._owner.engine.retry
            body = shrunk_body(
                body,
                plan.model,
                max_output_tokens=policy.shrunk_max_output_tokens,
                thinking_budget=policy.shrunk_thinking_budget,
            )
        headers = original.headers.copy()
        headers.pop("content-length", None)
        if key is not None:
            if call.route.kind == "openai_chat" or (
                "authorization" in headers and "x-goog-api-key" not in headers
            ):
                headers["authorization"] = f"Bearer {key}"
            else:
                headers["x-goog-api-key"] = key
        url = original.url.copy_with(
            raw_path=(
                path + ("?" + original.url.query.decode() if original.url.query else "")
            ).encode()
        )
        if location is not None:  # Vertex AI: each location has its own host
            url = url.copy_with(host=vertex_host(url.host, location))
        return httpx.Request(
            original.method, url, headers=headers, content=body, extensions=extensions
        )

    def _failure(self, response: httpx.Response, body: bytes) -> UpstreamError:
        diagnosis = diagnose_http(response.status_code, body, dict(response.headers))
        return UpstreamError(response, body, diagnosis)

    def _reply(self, call: _Call, answer: _Answer, info: CallInfo, stream: Any) -> httpx.Response:
        response = answer.response
        if answer.body is not None:
            self._owner.finished(info, _usage_of(answer.json()), failed=False)
            # The attempt's own answer, already read, goes back (nothing to build again):
            # its headers as a response made from the read body would have them.
            if not _sized_as(response.headers, answer.body):
                kept = [(k, v) for k, v in response.headers.raw if k.lower() not in _RESIZED]
                if answer.body:
                    kept.append((b"content-length", str(len(answer.body)).encode()))
                response.headers = httpx.Headers(kept)
            response.headers[MODEL_HEADER] = info.model or ""
            response.headers[ATTEMPTS_HEADER] = str(info.attempt_count)
            response.request = call.request
            return response
        # A stream is told to `last_call()` as its first byte comes (its usage, once
        # it ends): its reader asks which model answers while it reads.
        set_last_call(info)
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        ]
        headers.append((MODEL_HEADER, info.model or ""))
        headers.append((ATTEMPTS_HEADER, str(info.attempt_count)))
        return httpx.Response(
            response.status_code, headers=headers, stream=stream, request=call.request
        )

    def _check(self, call: _Call, answer: _Answer) -> UpstreamError | None:
        """Why this answer is a failed attempt: an error status, or a 200 with no
        usable answer (generateContent's JSON read by `diagnose_response`)."""
        response, body = answer.response, answer.body or b""
        if response.status_code >= 400:
            return self._failure(response, body)
        if call.route.kind == "generate":
            parsed = answer.json()
            if isinstance(parsed, dict) and _plainly_usable(parsed):
                return None  # the usual answer: no full reading
            quiet = diagnose_response(body if parsed is None else parsed)
            if quiet is not None:
                return QuietFailure(response, body, quiet)
        return None

    def _failed(
        self, call: _Call, error: CallFailed, last: UpstreamError | None
    ) -> Exception | httpx.Response:
        """What a call the path gave up on becomes: the Guard's error (also the SDK's),
        `ResponseBlocked` for a blocked prompt or answer, or, when thinking used the
        whole output budget even after a retry with less, the answer that came."""
        category = error.diagnosis.category
        if isinstance(last, QuietFailure) and category is Category.THINKING_EXHAUSTED:
            info = replace(
                _failed_info(error), model=last_model(error) or None, quiet_failure=category
            )
            self._owner.finished(info, _usage(last.body), failed=False)
            headers = [
                (k, v)
                for k, v in last.response.headers.multi_items()
                if k.lower() not in ("content-length", "content-encoding")
            ]
            headers += [
                (MODEL_HEADER, last_model(error)),
                (ATTEMPTS_HEADER, str(info.attempt_count)),
                (QUIET_HEADER, str(category)),
            ]
            return httpx.Response(200, headers=headers, content=last.body, request=call.request)
        self._owner.finished(_failed_info(error), None, failed=True)
        if category in (Category.PROMPT_BLOCKED, Category.RESPONSE_BLOCKED):
            return ResponseBlocked(
                str(error),
                diagnosis=error.diagnosis,
                attempts=error.attempts,
                response=_json_or_none(last.body) if last else None,
            )
        return sdk_error(
            error,
            response=last.response if last else None,
            body=last.body if last else None,
        )

    def _stream_timeouts(self, request: httpx.Request) -> dict[str, float | None]:
        """A stream's read timeout: no read may wait longer than the longer of the
        first-chunk and idle limits (one socket read limit serves both: an HTTP client
        cannot change it between the first chunk and the rest)."""
        policy = self._owner.engine.retry
        limits = [t for t in (policy.first_chunk_timeout, policy.stream_idle_timeout) if t]
        timeouts = dict(request.extensions.get("timeout") or {})
        if limits:
            timeouts["read"] = self._owner.real_seconds(max(limits))
        return timeouts

    # -- sync ---------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from gemini_guard.call.driver import run_sync

        body = request.read()
        parts = part_requests(request, body)  # a batch over the API's maximum
        if parts is not None:
            return joined_response(request, [self.handle_request(part) for part in parts])
        call = self._prepare(request, body)
        owner = self._owner
        last: list[UpstreamError] = []

        def send(plan: AttemptPlan) -> _Answer:
            attempt = self._attempt_request(call, plan)
            if call.streamed:  # a read that waits longer is a stalled stream
                attempt.extensions["timeout"] = self._stream_timeouts(attempt)
            response = self._inner.handle_request(attempt)
            if response.status_code >= 400 or not call.streamed:
                try:
                    answer = _Answer(response, response.read())
                finally:
                    response.close()
                failure = self._check(call, answer)
                if failure is not None:
                    last[:] = [failure]
                    raise failure
                return answer
            pieces = iter(response.iter_raw())
            try:  # errors (a read timeout included) before the first byte are retried
                first = next(pieces, b"")
            except BaseException:
                response.close()
                raise
            return _Answer(response, None, first, pieces)

        try:
            answer, info = run_sync(
                self._steps(call), clock=owner.engine.clock, quota=owner.engine.quota, send=send
            )
        except CallFailed as error:
            outcome = self._failed(call, error, last[0] if last else None)
            if isinstance(outcome, httpx.Response):
                return outcome
            raise outcome from error.__cause__
        return self._reply(call, answer, info, _SyncStream(self, answer, info))

    # -- async --------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from gemini_guard.call.driver import run_async

        body = await request.aread()
        parts = part_requests(request, body)
        if parts is not None:
            answers = [await self.handle_async_request(part) for part in parts]
            return joined_response(request, answers)
        call = self._prepare(request, body)
        owner = self._owner
        last: list[UpstreamError] = []

        async def send(plan: AttemptPlan) -> _Answer:
            attempt = self._attempt_request(call, plan)
            if call.streamed:  # a read that waits longer is a stalled stream
                attempt.extensions["timeout"] = self._stream_timeouts(attempt)
            response = await self._ainner.handle_async_request(attempt)
            if response.status_code >= 400 or not call.streamed:
                try:
                    answer = _Answer(response, await read_body(response))
                finally:
                    await response.aclose()
                failure = self._check(call, answer)
                if failure is not None:
                    last[:] = [failure]
                    raise failure
                return answer
            pieces = aiter(response.aiter_raw())
            try:  # errors (a read timeout included) before the first byte are retried
                first = await anext(pieces)
            except StopAsyncIteration:
                first = b""
            except BaseException:
                await response.aclose()
                raise
            return _Answer(response, None, first, pieces)

        try:
            answer, info = await run_async(
                self._steps(call), clock=owner.engine.clock, quota=owner.engine.quota, send=send
            )
        except CallFailed as error:
            outcome = self._failed(call, error, last[0] if last else None)
            if isinstance(outcome, httpx.Response):
                return outcome
            raise outcome from error.__cause__
        return self._reply(call, answer, info, _AsyncStream(self, answer, info))

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._ainner.aclose()


_SET_COOKIE = frozenset({b"set-cookie", b"set-cookie2"})


class _QuickCookies(httpx.Cookies):
    """A client's cookies that skip the jar for an answer that sets none (nearly every
    answer of the API): httpx hands each answer to the standard library's jar, which
    first parses the request's URL again, a tenth of what the guarded layer costs."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if any(name.lower() in _SET_COOKIE for name, _ in response.headers.raw):
            super().extract_cookies(response)


class _Urls:
    """The URLs a client's requests go to, parsed once each: the SDK hands each request
    its URL as a string, which httpx parses again every time (in pure Python)."""

    __slots__ = ("_base", "_parsed")

    MOST = 256  # distinct URLs kept (models and actions; file names vary)

    def __init__(self) -> None:
        self._base: httpx.URL | None = None
        self._parsed: dict[str, httpx.URL] = {}

    def merged(self, url: str, base: httpx.URL, merge: Callable[[str], httpx.URL]) -> httpx.URL:
        if base is not self._base:  # a new base_url: what was merged with the old one goes
            self._base, self._parsed = base, {}
        parsed = self._parsed.get(url)
        if parsed is None:
            if len(self._parsed) >= self.MOST:
                self._parsed = {}
            parsed = self._parsed[url] = merge(url)
        return parsed


def _known_encoding(response: httpx.Response) -> None:
    """Give an answer whose Content-Type names no charset its client's default encoding
    up front, as httpx would work it out on reading its text, but without parsing the
    header with the standard library's email parser (slow, once per answer)."""
    default = response.default_encoding
    if not isinstance(default, str):
        return  # a function of the content: httpx decides when the text is read
    for name, value in response.headers.raw:
        if name.lower() == b"content-type" and b";" in value:
            return  # parameters, perhaps a charset: httpx reads them
    with contextlib.suppress(ValueError):  # the text was read already
        response.encoding = default or "utf-8"


def _unbound(response: httpx.Response) -> None:
    """Cut the reference cycle httpx makes with each answer: its client binds the
    answer's stream to the answer (to set `elapsed` when it closes), so every answer,
    with its request and the connection's response hanging off it, is freed only by the
    cyclic collector. Under load those passes cost about a tenth of a call's CPU (a bare
    SDK call over aiohttp leaves no cycle). A weak reference sets `elapsed` all the same:
    the stream is closed through the answer, which is alive then."""
    stream = response.stream
    if getattr(stream, "_response", None) is response:
        stream._response = weakref.proxy(response)  # type: ignore[union-attr]


def _answered(response: httpx.Response) -> None:
    _known_encoding(response)
    _unbound(response)


async def _aanswered(response: httpx.Response) -> None:
    _known_encoding(response)
    _unbound(response)


class _Headers:
    """The client's headers merged with a request's, worked out once for each distinct
    pair: the SDK sends the same few headers with every request, and httpx merges them
    key by key each time."""

    __slots__ = ("_merged",)

    MOST = 64

    def __init__(self) -> None:
        self._merged: dict[Any, httpx.Headers] = {}

    def merged(self, own: httpx.Headers, headers: Any, merge: Callable[[Any], Any]) -> Any:
        if type(headers) is not dict:
            return merge(headers)
        key = (tuple(own.raw), tuple(headers.items()))
        try:
            merged = self._merged.get(key)
        except TypeError:  # a value that is no string: merged as httpx merges it
            return merge(headers)
        if merged is None:
            if len(self._merged) >= self.MOST:
                self._merged = {}
            merged = self._merged[key] = merge(headers)
        # The request copies what it is given: the kept merge is never changed.
        return merged


class _QuickClient(httpx._client.BaseClient):
    """What both of `guard.client`'s httpx clients change: each URL parsed once, the
    headers merged once per set, cookies read only from answers that set some."""

    def _quick_setup(self) -> None:
        self._quick_cookies = _QuickCookies()
        self._urls = _Urls()
        self._headers_merged = _Headers()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._quick_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._quick_cookies = _QuickCookies(cookies)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if isinstance(url, str):
            return self._urls.merged(url, self.base_url, super()._merge_url)
        return super()._merge_url(url)

    def _merge_headers(self, headers: Any = None) -> Any:
        return self._headers_merged.merged(self.headers, headers, super()._merge_headers)


class GuardedHttpClient(_QuickClient, httpx.Client):
    """The client `guard.client`'s SDK sends with, on a `GuardedTransport`: an
    `httpx.Client` that parses each URL once and reads cookies only from answers that
    set some (the google-genai SDK's own client does both)."""

    def __init__(self, transport: GuardedTransport) -> None:
        super().__init__(transport=transport, timeout=None, event_hooks={"response": [_answered]})
        self._quick_setup()

    def __del__(self) -> None:
        # A Guard dropped without close(): its connections go with it, as the SDK's
        # own clients' do (no socket left for the collector to warn about).
        with contextlib.suppress(Exception):
            if not self.is_closed:
                self.close()


class AsyncGuardedHttpClient(_QuickClient, httpx.AsyncClient):
    """`GuardedHttpClient` for asyncio (`guard.client.aio`)."""

    def __init__(self, transport: GuardedTransport) -> None:
        super().__init__(transport=transport, timeout=None, event_hooks={"response": [_aanswered]})
        self._quick_setup()


def _failed_info(error: CallFailed) -> CallInfo:
    from gemini_guard.call.effects import CallInfo

    requested = error.attempts[0].model if error.attempts else None
    return CallInfo(
        call_id="", model=None, attempts=error.attempts, elapsed=0.0, requested=requested
    )


_TAIL = 64 * 1024  # the end of a stream kept to read its last event's usage


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, transport: GuardedTransport, answer: _Answer, info: CallInfo) -> None:
        self._transport, self._answer, self._info = transport, answer, info

    def __iter__(self) -> Iterator[bytes]:
        answer = self._answer
        seen = bytearray(answer.first)
        yield answer.first
        assert isinstance(answer.rest, Iterator)
        try:
            for piece in answer.rest:
                seen += piece
                yield piece
        except httpx.TimeoutException:
            answer.response.close()
            raise _stalled(self._info, bytes(seen), self._transport) from None
        self._transport._owner.finished(
            self._info, _usage(_last_event(bytes(seen[-_TAIL:]))), failed=False
        )

    def close(self) -> None:
        self._answer.response.close()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, transport: GuardedTransport, answer: _Answer, info: CallInfo) -> None:
        self._transport, self._answer, self._info = transport, answer, info

    async def __aiter__(self) -> AsyncIterator[bytes]:
        answer = self._answer
        seen = bytearray(answer.first)
        yield answer.first
        rest = answer.rest
        assert rest is not None
        assert not isinstance(rest, Iterator)
        try:
            async for piece in rest:
                seen += piece
                yield piece
        except httpx.TimeoutException:
            await answer.response.aclose()  # closing the connection stops the upstream
            raise _stalled(self._info, bytes(seen), self._transport) from None
        self._transport._owner.finished(
            self._info, _usage(_last_event(bytes(seen[-_TAIL:]))), failed=False
        )

    async def aclose(self) -> None:
        await self._answer.response.aclose()


def _stalled(info: CallInfo, seen: bytes, transport: GuardedTransport) -> StreamStalled:
    idle = transport._owner.engine.retry.stream_idle_timeout
    text = _stream_text(seen)
    diagnosis = diagnose(TimeoutError(f"the stream went silent for {idle}s"))
    return StreamStalled(
        f"the stream from {info.model} went silent for more than {idle:g}s after "
        f"{len(text)} characters (stream_idle_timeout)",
        diagnosis=diagnosis,
        attempts=info.attempts,
        partial_text=text,
    )


def _stream_text(raw: bytes) -> str:
    """The answer's text in a run of server-sent events (Gemini's or OpenAI's)."""
    texts: list[str] = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = event.strip().removeprefix(b"data:").strip()
        if not data or data == b"[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            continue  # the cut end of the last event
        if not isinstance(chunk, dict):
            continue
        for candidate in (chunk.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or ():
                if isinstance(part, dict) and part.get("text") and not part.get("thought"):
                    texts.append(str(part["text"]))
        for choice in (chunk.get("choices") or [])[:1]:
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str):
                texts.append(content)
    return "".join(texts)


def _json_or_none(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


def last_model(error: CallFailed) -> str:
    sent = [a for a in error.attempts if a.sent]
    return sent[-1].model if sent else ""
