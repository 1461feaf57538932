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

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from gemini_guard.call.http import (
    Route,
    bare_model,
    config_of,
    embed_items,
    input_tokens_of_json,
    location_of,
    route_of,
    shrunk_body,
    streams,
    vertex_host,
    with_model,
)
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
from gemini_guard.tokens import estimate_tokens

if TYPE_CHECKING:
    from gemini_guard.call.effects import AttemptPlan, CallInfo
    from gemini_guard.call.engine import Engine

__all__ = ["GuardedTransport", "PathOwner", "UpstreamError"]

MODEL_HEADER = "x-gemini-guard-model"
ATTEMPTS_HEADER = "x-gemini-guard-attempts"
# On an answer returned although it is not a full one (thinking used the budget).
QUIET_HEADER = "x-gemini-guard-quiet-failure"


class PathOwner(Protocol):
    """What the transport needs of the Guard that owns it."""

    engine: Engine

    def chain_for(self, model: str) -> tuple[str, ...]: ...
    def key_for(self, project: str | None) -> str | None: ...
    def check_request(self, model: str, contents: Any, config: Any) -> None: ...
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


_UNREAD: Any = object()


@dataclass(slots=True)
class _Answer:
    response: httpx.Response  # status and headers; its stream is `first` + `rest`
    body: bytes | None  # the whole body, when not a stream
    first: bytes = b""
    rest: Iterator[bytes] | AsyncIterator[bytes] | None = None
    # The body's JSON, read once for the checks, the input tokens and the usage
    # (reading it three times was a twentieth of the gateway's time per request).
    parsed: Any = _UNREAD

    def json(self) -> Any:
        """The body's JSON (None when there is none, or it is not JSON)."""
        if self.parsed is _UNREAD:
            self.parsed = _json_or_none(self.body) if self.body else None
        return self.parsed


@dataclass(slots=True)
class _Call:
    request: httpx.Request
    route: Route
    body: bytes
    parsed: Any
    streamed: bool
    tokens: int
    requests: int = 1  # what the server counts the call as (a batch: its items)


def _input_tokens(answer: _Answer) -> int | None:
    return None if answer.body is None else input_tokens_of_json(answer.json())


def _usage(body: bytes | None) -> Usage | None:
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return _usage_of(parsed)


def _usage_of(parsed: Any) -> Usage | None:
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
        shrink_max_output_tokens: int = 2048,
        shrink_thinking_budget: int = 128,
    ) -> None:
        self._owner = owner
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._ainner = ainner if ainner is not None else httpx.AsyncHTTPTransport()
        self._shrink = (shrink_max_output_tokens, shrink_thinking_budget)

    # -- what both drivers share --------------------------------------------------------

    def _prepare(self, request: httpx.Request, body: bytes) -> _Call:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None  # not JSON: the server will say what is wrong with it
        route = route_of(request.method, request.url.path, parsed)
        owner = self._owner
        tokens = 0
        if route.model is not None and route.kind in ("generate", "stream", "count"):
            contents = parsed.get("contents") if isinstance(parsed, dict) else None
            try:
                owner.check_request(bare_model(route.model), contents, config_of(parsed))
            except CallFailed as refused:  # nothing was sent: the SDK's 400 shape too
                raise sdk_error(refused) from None
        if route.paced and owner.engine.pacing and isinstance(parsed, dict):
            tokens = estimate_tokens(parsed.get("contents")) + estimate_tokens(
                parsed.get("systemInstruction")
            )
            if route.kind == "embed":
                items = parsed.get("requests") or [parsed]
                tokens = sum(estimate_tokens([i.get("content")]) for i in items)
        call = _Call(request, route, body, parsed, streams(route, parsed), tokens)
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
        )

    def _attempt_request(self, call: _Call, plan: AttemptPlan) -> httpx.Request:
        original = call.request
        raw_path = original.url.raw_path
        path, body = raw_path.decode("ascii").partition("?")[0], call.body
        if call.route.model is not None:
            path, body = with_model(path, body, call.route, plan.model)
        if plan.shrink:
            body = shrunk_body(
                body, plan.model, max_output_tokens=self._shrink[0], thinking_budget=self._shrink[1]
            )
        # A list, not httpx's Headers: its lookups and assignments scan and raise, and
        # building an attempt's headers with them cost more than sending it.
        headers = [
            (k, v) for k, v in original.headers.multi_items() if k.lower() != "content-length"
        ]
        names = {k.lower() for k, _ in headers}
        key = self._owner.key_for(plan.project)
        if key is not None:
            if call.route.kind == "openai_chat" or (
                "authorization" in names and "x-goog-api-key" not in names
            ):
                name, value = "authorization", f"Bearer {key}"
            else:
                name, value = "x-goog-api-key", key
            headers = [(k, v) for k, v in headers if k.lower() != name]
            headers.append((name, value))
        url = original.url
        query = url.query
        target = (path + ("?" + query.decode() if query else "")).encode()
        if target != raw_path:  # an attempt on another model: parsing a URL costs ~15 µs
            url = url.copy_with(raw_path=target)
        location = location_of(plan.model)
        if location is not None:  # Vertex AI: each location has its own host
            url = url.copy_with(host=vertex_host(url.host, location))
        extensions = dict(original.extensions)
        if plan.timeout is not None:
            seconds = self._owner.real_seconds(plan.timeout)
            extensions["timeout"] = {
                "connect": seconds,
                "read": seconds,
                "write": seconds,
                "pool": seconds,
            }
        # What httpx would add for `content=`, added here with the body as a ready
        # stream (httpx's own way costs a scan of the headers per default).
        if "host" not in names:
            headers.append(("host", url.netloc.decode("ascii")))
        headers.append(("content-length", str(len(body))))
        return httpx.Request(
            original.method,
            url,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions=extensions,
        )

    def _failure(self, response: httpx.Response, body: bytes) -> UpstreamError:
        diagnosis = diagnose_http(response.status_code, body, dict(response.headers))
        return UpstreamError(response, body, diagnosis)

    def _reply(self, call: _Call, answer: _Answer, info: CallInfo, stream: Any) -> httpx.Response:
        headers = [
            (k, v)
            for k, v in answer.response.headers.multi_items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        ]
        headers.append((MODEL_HEADER, info.model or ""))
        headers.append((ATTEMPTS_HEADER, str(info.attempt_count)))
        if answer.body is not None:
            self._owner.finished(info, _usage_of(answer.json()), failed=False)
            return httpx.Response(
                answer.response.status_code,
                headers=headers,
                content=answer.body,
                request=call.request,
            )
        return httpx.Response(
            answer.response.status_code, headers=headers, stream=stream, request=call.request
        )

    def _check(self, call: _Call, answer: _Answer) -> UpstreamError | None:
        """Why this answer is a failed attempt: an error status, or a 200 with no
        usable answer (generateContent's JSON read by `diagnose_response`)."""
        response, body = answer.response, answer.body or b""
        if response.status_code >= 400:
            return self._failure(response, body)
        if call.route.kind == "generate":
            parsed = answer.json()
            quiet = diagnose_response(parsed if parsed is not None else body)
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
                    body = response.read()
                finally:
                    response.close()
                answer = _Answer(response, body)
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
                    body = await response.aread()
                finally:
                    await response.aclose()
                answer = _Answer(response, body)
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
    except (ValueError, RecursionError):
        return None


def last_model(error: CallFailed) -> str:
    sent = [a for a in error.attempts if a.sent]
    return sent[-1].model if sent else ""
