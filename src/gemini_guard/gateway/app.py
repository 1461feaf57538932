"""The gateway's front: take a client's raw HTTP request, check it, hand it on.

What happens here, in order, before anything is sent upstream:
1. the route: the Gemini REST API under /v1, /v1beta, /v1alpha, and Gemini's
   OpenAI-compatible surface under /{version}/openai/; anything else is a 404;
2. the caller: a gateway token (never a Google key) from `x-goog-api-key`,
   `Authorization: Bearer` or `?key=` (401 when missing, 403 when unknown);
3. the body: refused with 413 past the size limit before it is read whole, with 400
   when it is not JSON;
4. the model: one the token may use (403);
5. the response cache, when one is configured (`gemini_guard.gateway.cache`): a
   repeat is answered from the store, an identical request in flight is waited for
   (neither spends the token's budgets);
6. the token's own budgets (429);
then the request goes to the upstream `transport` (an httpx transport: the guarded
path in production; any transport in tests) with the client's credential removed, and
the answer is relayed as it arrives (a stream stays a stream). Refusals are in
Gemini's error format (wrapped in a list on the OpenAI surface, as Gemini does) and
say that the gateway refused, and why.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gemini_guard.cache.entry import Entry
from gemini_guard.call.transport import (
    ATTEMPTS_HEADER,
    MODEL_HEADER,
    PARSED_BODY,
    QUIET_HEADER,
)
from gemini_guard.errors import CallFailed, ConfigError
from gemini_guard.gateway import auth
from gemini_guard.gateway.access_log import AccessLog
from gemini_guard.gateway.auth import Caller, GatewayRefusal, TokenTable
from gemini_guard.gateway.budgets import CallerBudgets, Refusal
from gemini_guard.gateway.cache import CACHE_HEADER, GatewayCache, Lookup, sse_events
from gemini_guard.telemetry.spend import Usage

__all__ = ["API_VERSIONS", "Gateway", "ReadyCheck"]

API_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
_API_METHODS = frozenset({"GET", "POST", "PATCH", "DELETE"})
# Never forwarded: the client's credentials (the upstream has its own), and what
# describes this hop rather than the request.
_DROPPED_REQUEST_HEADERS = frozenset(
    {
        "x-goog-api-key",
        "authorization",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "accept-encoding",
    }
)
_DROPPED_REQUEST_RAW = frozenset(name.encode() for name in _DROPPED_REQUEST_HEADERS)
_DROPPED_RESPONSE_HEADERS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}
)
_access = logging.getLogger("gemini_guard.gateway.access")
# Upstream URLs kept parsed (a path names a model, so there are few); past this many
# (a client making up paths) they are dropped and parsed again.
_KEPT_URLS = 1024

# A readiness check: (name, coroutine function returning None when fine, or why not).
ReadyCheck = tuple[str, Callable[[], Any]]


@dataclass(frozen=True, slots=True)
class _Inbound:
    caller: Caller
    surface: str  # "gemini" | "openai"
    model: str | None
    path: str
    query: str
    body: bytes
    parsed: Any
    streaming: bool
    # A generateContent, a streamGenerateContent as server-sent events, or a chat
    # completion that the response cache may answer.
    cacheable: bool


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


def _refusal(code: int, status: str, message: str, reason: str) -> _Refused:
    refusal = auth._refusal(code, status, message, reason)
    return _Refused(refusal.status, refusal.body)


def _from(refusal: GatewayRefusal) -> _Refused:
    return _Refused(refusal.status, refusal.body)


class Gateway:
    """The gateway's ASGI app (`gateway.app`), in front of an upstream transport.

    - `transport`: sends each checked request upstream (`base_url` + the same path);
    - `upstream_key`: the Google key to send, when the transport does not put its own;
    - `budgets`: per-token request and dollar budgets (None: none configured);
    - `cache`: the response cache, per token (None: no cache configured);
    - `ready_checks`: what `/readyz` checks besides the configuration being loaded;
    - `access_log`: where the access lines go (None: the `gemini_guard.gateway.access`
      logger).
    """

    def __init__(
        self,
        *,
        tokens: TokenTable,
        transport: httpx.AsyncBaseTransport,
        base_url: str,
        upstream_key: str | None = None,
        budgets: CallerBudgets | None = None,
        cache: GatewayCache | None = None,
        max_body_bytes: int = 20 * 1024 * 1024,
        ready_checks: tuple[ReadyCheck, ...] = (),
        metrics: Callable[[], bytes] | None = None,
        status: Callable[[], str] | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self._tokens = tokens
        self._access_log = access_log
        # The transport is called directly: an httpx client around it would parse and
        # merge URLs, cookies and auth for every request (measured: a third of the
        # gateway's time per request) and adds nothing here.
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}
        if upstream_key is not None and not upstream_key.isascii():
            # An HTTP header can't carry it (a quote or space pasted with the key?).
            raise ConfigError(
                "the upstream API key holds a character that is not ASCII: set its "
                "environment variable again to the key exactly as Google shows it"
            )
        self._upstream_key = upstream_key
        self._upstream_key_raw = (upstream_key or "").encode("ascii")
        self._budgets = budgets
        self._cache = cache
        self._max_body = max_body_bytes
        self._ready_checks = ready_checks
        self._metrics = metrics
        self._status = status
        self._starlette = Starlette(
            routes=[
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/metrics", self._metrics_page, methods=["GET"]),
                Route("/status", self._status_page, methods=["GET"]),
                Route(
                    "/{version}/openai/{rest:path}",
                    self._openai,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route(
                    "/{version}/{rest:path}",
                    self._gemini,
                    methods=["GET", "POST", "PATCH", "DELETE"],
                ),
            ]
        )
        # "/nowhere" is a 404 in Gemini's format, not a redirect to "/nowhere/".
        self._starlette.router.redirect_slashes = False
        self._starlette.add_exception_handler(404, self._not_found)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self._dispatch(scope, receive, send)

        # A function, not a bound method: uvicorn tells ASGI 3 apps by that.
        self.app = app

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app. The API's routes are dispatched here directly: Starlette's
        router and middleware cost a tenth of the gateway's time per request (measured
        with py-spy) and add nothing on this path, whose errors are the gateway's own.
        Everything else (operations, unknown versions, other methods) is Starlette's."""
        if scope["type"] == "http" and scope["method"] in _API_METHODS:
            version, slash, rest = scope["path"][1:].partition("/")
            if slash and rest and version in API_VERSIONS:
                openai = rest.startswith("openai/")
                if not openai or scope["method"] != "PATCH":
                    request = Request(scope, receive)
                    if openai:
                        request.scope["path_params"] = {
                            "version": version,
                            "rest": rest.removeprefix("openai/"),
                        }
                    else:
                        request.scope["path_params"] = {"version": version, "rest": rest}
                    surface = "openai" if openai else "gemini"
                    started = time.perf_counter()
                    answered = await self._answer(request, surface)
                    try:
                        await answered[0](scope, receive, send)
                    finally:
                        # The access line once the answer has gone out: the gateway's
                        # own bookkeeping, kept off the caller's wait (its `ms` is
                        # the whole exchange, a stream's included).
                        self._log(request, started, *answered)
                    return
        await self._starlette(scope, receive, send)

    async def aclose(self) -> None:
        if self._access_log is not None:
            self._access_log.flush()  # first: what is logged is kept whatever fails next
        await self._transport.aclose()
        if self._budgets is not None:
            self._budgets.close()

    # -- operations ---------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        problems: dict[str, str] = {}
        for name, check in self._ready_checks:
            try:
                why = await check()
            except Exception as exc:  # a check that breaks is a failed check
                why = f"{type(exc).__name__}: {exc}"
            if why:
                problems[name] = str(why)
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def _metrics_page(self, request: Request) -> Response:
        if self._metrics is None:
            return PlainTextResponse(
                "metrics are off: set [telemetry] metrics = true (the prometheus extra)\n",
                status_code=404,
            )
        return Response(self._metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _status_page(self, request: Request) -> Response:
        if self._status is None:
            return PlainTextResponse("no status page for this gateway\n", status_code=404)
        return HTMLResponse(self._status())

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _error_response(
            _refusal(
                404,
                "NOT_FOUND",
                f"no such route: {request.method} {request.url.path}. The gateway serves "
                "the Gemini API under /v1, /v1beta, /v1alpha and its OpenAI-compatible "
                "surface under /v1beta/openai/.",
                "GATEWAY_ROUTE_UNKNOWN",
            ),
            openai="/openai/" in request.url.path,
        )

    # -- the two surfaces -----------------------------------------------------------

    async def _gemini(self, request: Request) -> Response | _Relayed:
        return await self._handle(request, surface="gemini")

    async def _openai(self, request: Request) -> Response | _Relayed:
        return await self._handle(request, surface="openai")

    async def _handle(self, request: Request, *, surface: str) -> Response | _Relayed:
        """A request Starlette routed here (it sends the answer afterwards)."""
        started = time.perf_counter()
        answered = await self._answer(request, surface)
        self._log(request, started, *answered)
        return answered[0]

    async def _answer(
        self, request: Request, surface: str
    ) -> tuple[Response | _Relayed, _Inbound | None]:
        """The answer to one API request, and what the intake made of it (None when
        the request was refused before that)."""
        inbound: _Inbound | None = None
        try:
            inbound = await self._intake(request, surface)
            response = await self._forward(request, inbound)
        except _Refused as refused:
            response = _error_response(refused, openai=surface == "openai")
        except ClientDisconnect:
            response = Response(status_code=499)
        return response, inbound

    def _log(
        self,
        request: Request,
        started: float,
        response: Response | _Relayed,
        inbound: _Inbound | None,
    ) -> None:
        """The access line: who called, what for, how it ended (no key, token or prompt).
        To the gateway's own `access_log` when it has one (the served gateway's, written
        in batches), else to the `gemini_guard.gateway.access` logger."""
        access_log = self._access_log
        if access_log is None and not _access.isEnabledFor(logging.INFO):
            return
        served_by, attempts, cache = _told(response)
        entry = {
            "caller": inbound.caller.name if inbound else "-",
            "method": request.method,
            "path": request.scope["path"],
            "model": inbound.model if inbound else None,
            "status": response.status_code,
            "served_by": served_by,
            "attempts": attempts,
            "cache": cache,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if access_log is not None:
            access_log.add(entry)
            return
        # The record made directly: `Logger.info` would walk the stack to find the
        # caller's file and line (a fifth of the line's cost), which no one reads here.
        line = json.dumps(entry)
        _access.handle(_access.makeRecord(_access.name, logging.INFO, __file__, 0, line, (), None))

    async def _intake(self, request: Request, surface: str) -> _Inbound:
        version = request.path_params["version"]
        if version not in API_VERSIONS or not request.path_params["rest"]:
            raise _refusal(
                404,
                "NOT_FOUND",
                f"API version {version} is not served; use v1, v1beta or v1alpha",
                "GATEWAY_ROUTE_UNKNOWN",
            )
        # From the scope: `request.url` would build (and parse) a whole URL.
        query = request.scope["query_string"].decode("latin-1")
        token = auth.presented_token(request.headers, query)
        if token is None:
            raise _from(auth.missing_token())
        caller = self._tokens.authenticate(token)
        if caller is None:
            raise _from(auth.unknown_token())
        body = await self._body(request)
        parsed = _parsed(body)
        rest = str(request.path_params["rest"])
        model = _model_of(surface, rest, parsed)
        if model is not None and not caller.may_use(model):
            raise _from(auth.model_not_allowed(caller, model))
        streaming = (surface == "gemini" and rest.endswith(":streamGenerateContent")) or (
            surface == "openai" and isinstance(parsed, dict) and bool(parsed.get("stream"))
        )
        # The client's own key never travels on: strip `key=` from the query.
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = urlencode([(k, v) for k, v in pairs if k != "key"])
        return _Inbound(
            caller=caller,
            surface=surface,
            model=model,
            path=f"/{version}/{'openai/' if surface == 'openai' else ''}{rest}",
            query=kept,
            body=body,
            parsed=parsed,
            streaming=streaming,
            cacheable=model is not None
            and request.method == "POST"
            and (
                rest.endswith(":generateContent") or (streaming and ("alt", "sse") in pairs)
                if surface == "gemini"
                else rest == "chat/completions"
            ),
        )

    def _url(self, target: str) -> httpx.URL:
        """The upstream URL of `target` (path and query). Parsed URLs are kept: the
        same few paths come again and again, and parsing one costs ~15 µs."""
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) >= _KEPT_URLS:
                self._urls.clear()
            url = self._urls[target] = httpx.URL(self._base_url + target)
        return url

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            raise self._too_large(int(declared))
        # The ASGI messages read directly: `request.stream()` is an async generator,
        # and making one (registered with the loop) costs more than the read.
        pieces: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            piece = message.get("body", b"")
            if piece:
                pieces.append(piece)
                size += len(piece)
                if size > self._max_body:
                    raise self._too_large(None)
            if not message.get("more_body", False):
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _too_large(self, size: int | None) -> _Refused:
        told = f"{size:,} bytes" if size is not None else "larger than that"
        return _refusal(
            413,
            "INVALID_ARGUMENT",
            f"the request body is {told}; the limit is {self._max_body:,} bytes (Gemini's "
            "limit for an inline request). Upload large inputs with the Files API.",
            "GATEWAY_BODY_TOO_LARGE",
        )

    async def _forward(self, request: Request, inbound: _Inbound) -> Response | _Relayed:
        cache = self._cache
        lookup = None
        if cache is not None and inbound.cacheable and inbound.model is not None:
            if inbound.surface == "openai":
                lookup = cache.plan_openai(inbound.caller, inbound.parsed, inbound.body)
            else:
                lookup = cache.plan(
                    inbound.caller,
                    inbound.model,
                    inbound.parsed,
                    inbound.body,
                    stream=inbound.streaming,
                )
        if cache is None or lookup is None:
            return (await self._send(request, inbound, None))[0]
        entry = await cache.hit(lookup)
        if entry is not None:
            return _from_cache(entry, stream=lookup.stream)
        # A stream is not coalesced: each is read at its own client's pace.
        if lookup.stream or not cache.coalesces:
            cache.missed()
            return (await self._send(request, inbound, lookup))[0]
        (answer, kept), shared = await cache.coalesce(
            lookup, lambda: self._lead(request, inbound, lookup)
        )
        if not shared:
            return answer
        # Answered by an identical request's upstream call: like a hit, it spent no
        # upstream quota or dollars of this request's own.
        if kept is not None:
            cache.shared(lookup, kept)
        return answer.shared() if isinstance(answer, _Relayed) else answer

    async def _lead(
        self, request: Request, inbound: _Inbound, lookup: Lookup
    ) -> tuple[Response | _Relayed, Entry | None]:
        """The upstream call of a flight of identical requests. Its leader looks again
        first: the previous flight may have kept the answer and ended between this
        request's lookup and its start."""
        assert self._cache is not None
        entry = await self._cache.hit(lookup)
        if entry is not None:
            return _from_cache(entry, stream=False), entry
        self._cache.missed()
        return await self._send(request, inbound, lookup)

    async def _send(
        self, request: Request, inbound: _Inbound, lookup: Lookup | None
    ) -> tuple[Response | _Relayed, Entry | None]:
        """The request sent on the guarded path, and the cache entry its answer made
        (None when it was not kept)."""
        body = inbound.body if lookup is None else lookup.body
        permit = None
        if self._budgets is not None:
            admitted = await self._budgets.admit(inbound.caller, inbound.model)
            if isinstance(admitted, Refusal):
                raise _over_budget(admitted)
            permit = admitted
        # The client's headers as they came, bytes (httpx takes them without encoding
        # them again).
        headers = [
            (name, value)
            for name, value in request.scope["headers"]
            if name.lower() not in _DROPPED_REQUEST_RAW
        ]
        if self._upstream_key is not None:
            if inbound.surface == "openai":
                headers.append((b"authorization", b"Bearer " + self._upstream_key_raw))
            else:
                headers.append((b"x-goog-api-key", self._upstream_key_raw))
        url = self._url(inbound.path + (f"?{inbound.query}" if inbound.query else ""))
        # The body as a ready stream with its length: httpx's `content=` would scan the
        # headers once per default it adds.
        headers.append((b"host", url.netloc))
        if body or request.method in ("POST", "PATCH"):
            headers.append((b"content-length", b"%d" % len(body)))
        upstream = httpx.Request(
            request.method,
            url,
            headers=headers,
            stream=httpx.ByteStream(body),
            # The body as parsed by the intake (unless the cache stage rewrote it).
            extensions={PARSED_BODY: (body, inbound.parsed)} if body is inbound.body else None,
        )
        # Read now, in one step: the guarded path's and the wire's `aread` then find it
        # read, instead of each going through httpx's async iteration of the stream.
        upstream.read()
        try:
            reply = await self._transport.handle_async_request(upstream)
        except httpx.TransportError as exc:
            raise _upstream_unreachable(exc) from None
        except CallFailed as error:  # the guarded path gave up: say what it saw
            if self._cache is not None:
                await self._cache.failed(inbound.caller, error)
            return _call_failed(error, openai=inbound.surface == "openai"), None
        finally:
            if self._budgets is not None:
                await self._budgets.sent(permit)
        if inbound.streaming and reply.status_code == 200:
            pieces = _relay(reply)
            if lookup is not None and inbound.model is not None:
                served_by = reply.headers.get(MODEL_HEADER, "")
                pieces = self._kept(pieces, lookup, inbound.model, served_by)
            streamed = StreamingResponse(pieces, status_code=reply.status_code)
            streamed.raw_headers = _raw_kept(reply)  # every one, as for a whole answer
            if lookup is not None:
                streamed.raw_headers.append((_CACHE_RAW, b"miss"))
            return streamed, None
        try:
            content = await reply.aread()
        except httpx.TransportError as exc:
            raise _upstream_unreachable(exc) from None
        finally:
            await reply.aclose()
        if (
            self._budgets is not None
            and reply.status_code == 200
            and inbound.model
            and self._budgets.counts_dollars(inbound.caller)
        ):
            self._budgets.spent(inbound.caller, inbound.model, _usage(content, inbound.surface))
        media = reply.headers.get("content-type", "")
        if reply.status_code >= 500 and "json" not in media:
            raise _upstream_garbled(reply.status_code, media)
        relayed = _Relayed(reply, content)
        kept = None
        if lookup is not None and self._cache is not None:
            relayed.raw_headers.append((_CACHE_RAW, b"miss"))
            if reply.status_code == 200 and inbound.model is not None:
                quiet = QUIET_HEADER in reply.headers
                served_by = "" if quiet else reply.headers.get(MODEL_HEADER, "")
                kept = await self._cache.answered(lookup, inbound.model, served_by, [content])
        return relayed, kept

    async def _kept(
        self, pieces: AsyncGenerator[bytes, None], lookup: Lookup, model: str, served_by: str
    ) -> AsyncGenerator[bytes, None]:
        """A stream relayed as it comes, and kept once it has come whole."""
        assert self._cache is not None
        seen: list[bytes] = []
        try:
            async for piece in pieces:
                seen.append(piece)
                yield piece
        finally:
            # A client that went away stops the relay here: the upstream is closed at
            # once (which cancels its request), and nothing half-read is kept.
            await pieces.aclose()
        bodies = sse_events(b"".join(seen))
        if bodies is not None:
            await self._cache.answered(lookup, model, served_by, bodies)


def _from_cache(entry: Entry, *, stream: bool) -> Response:
    """A stored answer, as the API's own bytes (a stream's chunks as server-sent
    events, all at once)."""
    assert entry.wire is not None
    if stream:
        body, media = b"".join(b"data: " + w + b"\r\n\r\n" for w in entry.wire), "text/event-stream"
    else:
        body, media = entry.wire[0], "application/json; charset=UTF-8"
    return Response(
        body,
        headers={
            "content-type": media,
            CACHE_HEADER: "hit",
            MODEL_HEADER: entry.model,
            ATTEMPTS_HEADER: "0",
        },
    )


_DROPPED_RAW = frozenset(name.encode() for name in _DROPPED_RESPONSE_HEADERS)
_CACHE_RAW = CACHE_HEADER.encode()
_TOLD = {MODEL_HEADER.encode(): 0, ATTEMPTS_HEADER.encode(): 1, _CACHE_RAW: 2}


def _raw_kept(reply: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The upstream's headers to relay, as raw bytes, a repeated one kept each time."""
    return [
        (name.lower(), value)
        for name, value in reply.headers.raw
        if name.lower() not in _DROPPED_RAW
    ]


def _told(response: Response | _Relayed) -> tuple[str | None, str | None, str | None]:
    """What an answer's headers tell the access log: the model that answered, the
    attempts, the cache's verdict."""
    if isinstance(response, _Relayed):
        return response.told()
    headers = response.headers
    return headers.get(MODEL_HEADER), headers.get(ATTEMPTS_HEADER), headers.get(CACHE_HEADER)


class _Relayed:
    """An upstream answer relayed whole, sent as its two ASGI messages. Its headers go
    as the upstream's raw bytes (every one, a repeated Set-Cookie too): a Starlette
    `Response` would decode, check and encode each of them again."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, reply: httpx.Response, body: bytes) -> None:
        self.status_code = reply.status_code
        self.body = body
        self.raw_headers = _raw_kept(reply)
        self.raw_headers.append((b"content-length", str(len(body)).encode()))

    def told(self) -> tuple[str | None, str | None, str | None]:
        """The model, attempts and cache headers, for the access log."""
        found: list[str | None] = [None, None, None]
        for name, value in self.raw_headers:
            where = _TOLD.get(name)
            if where is not None:
                found[where] = value.decode("latin-1")
        return found[0], found[1], found[2]

    def shared(self) -> _Relayed:
        """The same answer for a request that shared this one's upstream call."""
        copy = _Relayed.__new__(_Relayed)
        copy.status_code = self.status_code
        copy.body = self.body
        copy.raw_headers = [
            (name, b"coalesced" if name == _CACHE_RAW else value)
            for name, value in self.raw_headers
        ]
        return copy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


async def _relay(reply: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The upstream stream, piece by piece; closing it (a client that went away)
    closes the upstream connection, which cancels the upstream request."""
    try:
        async for piece in reply.aiter_raw():
            yield piece
    finally:
        await reply.aclose()


def _parsed(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _refusal(
            400,
            "INVALID_ARGUMENT",
            f"the request body is not valid JSON ({exc}); nothing was sent upstream",
            "GATEWAY_BODY_NOT_JSON",
        ) from None


def _model_of(surface: str, rest: str, parsed: Any) -> str | None:
    if surface == "openai":
        model = parsed.get("model") if isinstance(parsed, dict) else None
        return str(model).removeprefix("models/") if isinstance(model, str) and model else None
    if rest.startswith("models/"):
        name = rest.removeprefix("models/").partition(":")[0]
        return name or None
    return None


def _usage(content: bytes, surface: str) -> Usage | None:
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if surface == "openai":
        usage = body.get("usage")
        if not isinstance(usage, dict):
            return None
        return Usage(
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
        )
    meta = body.get("usageMetadata")
    if not isinstance(meta, dict):
        return None
    return Usage(
        input_tokens=int(meta.get("promptTokenCount", 0)),
        output_tokens=int(meta.get("candidatesTokenCount", 0)),
        thinking_tokens=int(meta.get("thoughtsTokenCount", 0)),
        cached_tokens=int(meta.get("cachedContentTokenCount", 0)),
    )


def _over_budget(refusal: Refusal) -> _Refused:
    refused = _refusal(
        429,
        "RESOURCE_EXHAUSTED",
        refusal.message + "; nothing was sent upstream",
        f"GATEWAY_BUDGET_{refusal.reason.upper()}",
    )
    _retry_after(refused, refusal.retry_after)
    return refused


def _retry_after(refused: _Refused, seconds: float | None) -> None:
    """Tell the client when to come back, as Google does: a RetryInfo detail."""
    if seconds is not None:
        refused.body["error"]["details"].append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{max(1, round(seconds))}s",
            }
        )


def _upstream_unreachable(exc: Exception) -> _Refused:
    return _refusal(
        502,
        "UNAVAILABLE",
        f"the upstream did not answer ({type(exc).__name__}); the request may be retried",
        "GATEWAY_UPSTREAM_UNREACHABLE",
    )


def _upstream_garbled(status: int, media: str) -> _Refused:
    return _refusal(
        503 if status == 503 else 502,
        "UNAVAILABLE",
        f"the upstream answered {status} with a {media or 'non-JSON'} page instead of a "
        "Gemini error; it is down or something between is failing",
        "GATEWAY_UPSTREAM_GARBLED",
    )


def _call_failed(error: CallFailed, *, openai: bool) -> Response:
    """The answer for a call the guarded path gave up on: the upstream's own last error
    when there was one (its status and body), else the gateway's reason (a quota wait
    longer than allowed, every breaker open, the day's quota spent)."""
    attempts = str(sum(1 for a in error.attempts if a.sent))
    headers = {"x-gemini-guard-attempts": attempts}
    details = getattr(error, "details", None)
    code = getattr(error, "code", None)
    if (
        isinstance(details, (dict, list))
        and isinstance(code, int)
        and any(a.sent for a in error.attempts)
    ):
        body: Any = details
        if openai and isinstance(body, dict):
            body = [body]
        return JSONResponse(body, status_code=code, headers=headers)
    diagnosis = error.diagnosis
    status = diagnosis.http_status or 503
    refused = _refusal(
        status,
        diagnosis.grpc_status or "UNAVAILABLE",
        f"{error} (nothing more was sent)",
        f"GATEWAY_{type(error).__name__.upper()}",
    )
    _retry_after(refused, diagnosis.retry_after)
    response = _error_response(refused, openai=openai)
    response.headers.update(headers)
    return response


def _error_response(refused: _Refused, *, openai: bool) -> Response:
    body: Any = [refused.body] if openai else refused.body
    return JSONResponse(body, status_code=refused.status)
