"""An httpx transport for the gateway's upstream: HTTP/1.1 on asyncio, read by httptools.

Why not aiohttp here: at concurrency 1 its client spent about 150 µs of a gateway
request's wait building and parsing its own objects around one write and one read
(stamped inside the gateway: 94 µs from the call to the socket write, 53 µs from the
first answer byte back to the caller). This transport writes the request's bytes as
httpx already holds them and hands the parsed answer over as it arrives: a pass-through
in front of a fixed upstream added 0.07 ms instead of 0.19 ms (docs/benchmarks.md,
"The gateway's own upstream client and access log").

What it does: keep-alive connections per origin (scheme, host, port), the most recently
used first, dropped after `keepalive_seconds` idle or when the upstream closes them;
TLS for https (certifi's roots, as httpx's own); the answer streamed as it arrives,
with reading paused while a slow reader has more than a megabyte waiting; httpx's
`connect` and `read` timeouts (`read`: the longest wait for the next bytes); errors as
the httpx exceptions callers (and `diagnose`) know; interim answers (100, 103)
skipped, and an answer with neither a length nor chunks ended by its connection. A
GET, PUT, DELETE or OPTIONS on a kept connection that the upstream closed as it went
out is sent once more on a new one (a POST is not: the upstream may have acted on it).
A connection whose answer was not read to its end is closed, not reused: that is how
an upstream learns that a client went away mid-stream. A compressed answer is handed
to httpx as it came (httpx decodes it as it is read).

What it does not: proxies, HTTP/2, `Expect: 100-continue`, HEAD (httptools cannot tell a
HEAD answer's missing body), request bodies sent as a stream (they are read whole
first, as the gateway holds them anyway).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator
from typing import cast

import certifi
import httptools
import httpx

from gemini_guard.call.loop_bound import PerLoop

__all__ = ["WireTransport"]

# Hop-by-hop or recomputed here: the body's length is set from the body itself.
_DROPPED_REQUEST_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})
# A reader this far behind pauses the socket until it catches up.
_PAUSE_AT = 1 << 20
_HTTP_11 = b"HTTP/1.1"
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class _Exchange:
    """One request's answer as it arrives on a connection."""

    __slots__ = (
        "buffered",
        "chunks",
        "complete",
        "encoded",
        "error",
        "framed",
        "headers",
        "loop",
        "read_timeout",
        "reason",
        "request",
        "status",
        "waiter",
        "whole",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, request: httpx.Request, read_timeout: float | None
    ) -> None:
        self.loop = loop
        self.request = request
        self.read_timeout = read_timeout
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.complete = False
        # Its length given, or sent in chunks; else its body ends when the connection does.
        self.framed = True
        self.encoded = False  # compressed: httpx decodes it as it is read
        self.error: httpx.TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.whole = False  # read whole: never paused

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: httpx.TransportError) -> None:
        if self.error is None and not self.complete:
            self.error = error
            self.wake()

    async def changed(self) -> None:
        """Until more of the answer arrives, it ends, or it fails."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        timer = None
        if self.read_timeout is not None:
            timer = self.loop.call_later(self.read_timeout, self._timed_out)
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    def _timed_out(self) -> None:
        self.fail(
            httpx.ReadTimeout(
                f"the upstream sent nothing for {self.read_timeout:g} s", request=self.request
            )
        )


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an origin; httptools calls the `on_*` methods."""

    def __init__(self, pool: _Pool, origin: tuple[str, str, int]) -> None:
        self._pool = pool
        self.origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        # The upstream closed it before answering the request sent on it.
        self.closed_by_upstream = False
        self.idle_since = 0.0
        self._keep_alive = True
        self._paused = False

    # -- asyncio ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but act as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            # Bytes no request asked for: the connection can no longer be trusted.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            exchange = self.exchange
            if exchange is not None:
                exchange.fail(
                    httpx.RemoteProtocolError(
                        f"the upstream's answer is not valid HTTP/1.1: {exc}",
                        request=exchange.request,
                    )
                )
            self.close()

    def eof_received(self) -> bool:
        return False  # close: a half-closed upstream is a closed one

    def connection_lost(self, exc: Exception | None) -> None:
        closed_by_us = self.closed
        self.closed = True
        self._pool.forget(self)
        exchange = self.exchange
        if exchange is not None and exchange.status and not exchange.framed and exc is None:
            # An answer with neither a length nor chunks (HTTP/1.0's way) ends here.
            exchange.complete = True
            self.exchange = None
            exchange.wake()
        elif exchange is not None:
            self.closed_by_upstream = not closed_by_us and not exchange.status
            why = "before it sent an answer" if not exchange.status else "mid-answer"
            exchange.fail(
                httpx.RemoteProtocolError(
                    f"the upstream closed the connection {why}", request=exchange.request
                )
            )

    # -- httptools ----------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        if self.exchange is not None:
            self.exchange.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.exchange is not None:
            self.exchange.headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        status = self._parser.get_status_code()
        if status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            exchange.headers.clear()
            exchange.reason = b""
            return
        exchange.status = status
        self._keep_alive = self._parser.should_keep_alive()
        framed = status in (204, 304)  # no body to frame
        for name, _ in exchange.headers:
            lowered = name.lower()
            if lowered in _FRAMING:
                framed = True
            elif lowered == b"content-encoding":
                exchange.encoded = True
        exchange.framed = framed
        exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.chunks.append(body)
            exchange.buffered += len(body)
            if exchange.buffered > _PAUSE_AT and not exchange.whole and not self._paused:
                self._paused = True
                assert self.transport is not None
                self.transport.pause_reading()
            exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or not exchange.status:
            return  # an interim answer's end: the real one is still to come
        exchange.complete = True
        self.exchange = None
        exchange.wake()
        if self._paused and not self.closed:
            # The answer is all here (what its reader has yet to take is buffered): the
            # next request's answer must be read.
            self._paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        if self._keep_alive and not self.closed:
            self._pool.release(self)
        else:
            self.close()

    # -- the transport's side -----------------------------------------------------

    def send(self, exchange: _Exchange, data: bytes) -> None:
        assert self.transport is not None
        self.exchange = exchange
        self.transport.write(data)

    def taken(self, exchange: _Exchange) -> None:
        """The reader took what was buffered: read on if reading was paused for it."""
        exchange.buffered = 0
        if self._paused and self.exchange is exchange and not self.closed:
            self._paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool.forget(self)
            if self.transport is not None:
                self.transport.close()


class _Pool:
    """The connections of one event loop, idle ones by origin."""

    def __init__(self, keepalive_seconds: float) -> None:
        self._keepalive = keepalive_seconds
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()

    def idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely closed
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
        return None

    def add(self, connection: _Connection) -> None:
        self._all.add(connection)

    def release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)

    def forget(self, connection: _Connection) -> None:
        self._all.discard(connection)
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    async def close(self) -> None:
        for connection in list(self._all):
            connection.close()
        # Let the loop run the transports' closing callbacks before it may end.
        await asyncio.sleep(0)


class _Answer(httpx.AsyncByteStream):
    """The answer's body as it arrives."""

    def __init__(self, connection: _Connection, exchange: _Exchange) -> None:
        self._connection = connection
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        while True:
            if exchange.chunks:
                chunks = exchange.chunks
                piece = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._connection.taken(exchange)
                yield piece
            elif exchange.complete:
                return
            else:
                await exchange.changed()

    async def aclose(self) -> None:
        if not self._exchange.complete:
            # Abandoned midway (a client that went away): closing the connection is
            # how the upstream learns to stop.
            self._connection.close()


class _WholeAnswer(_Answer):
    """An answer sent as it is (not compressed): it can also be handed over whole."""

    async def read_whole(self) -> bytes:
        """The whole body in one piece (the guarded path's `read_body` looks for this)."""
        exchange = self._exchange
        exchange.whole = True
        self._connection.taken(exchange)
        while not exchange.complete:
            await exchange.changed()
        chunks = exchange.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return body


def _client_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


class WireTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncClient(transport=WireTransport())`: httpx's API, HTTP/1.1 on asyncio.

    One pool of connections per event loop (a connection belongs to the loop it was
    made on). `ssl_context`: what https connections verify against (certifi's roots
    by default)."""

    def __init__(
        self, *, keepalive_seconds: float = 15.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._ssl = ssl_context
        self._pools = PerLoop(lambda: _Pool(keepalive_seconds), _Pool.close)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            raise httpx.UnsupportedProtocol(
                "WireTransport does not send HEAD requests; use httpx's own transport",
                request=request,
            )
        loop = asyncio.get_running_loop()
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        data = _request_bytes(request, body)
        url = request.url
        scheme = url.scheme
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        pool = self._pools.get()
        connection = pool.idle(origin)
        while True:
            kept = connection is not None
            if connection is None:
                connection = await self._connect(
                    loop, pool, origin, request, timeouts.get("connect")
                )
            exchange = _Exchange(loop, request, timeouts.get("read"))
            connection.send(exchange, data)
            try:
                while not exchange.status:
                    await exchange.changed()
            except httpx.RemoteProtocolError:
                connection.close()
                if kept and connection.closed_by_upstream and request.method in _IDEMPOTENT:
                    # A kept connection the upstream closed as the request went out
                    # (an idle timeout): once more, on a new one. Not a POST: the
                    # upstream may have acted on it (the guarded path decides that).
                    connection = None
                    continue
                raise
            except BaseException:
                connection.close()  # a timeout, a cancel: the answer can't be waited for
                raise
            break
        stream = (_Answer if exchange.encoded else _WholeAnswer)(connection, exchange)
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=stream,
            request=request,
            extensions={"http_version": _HTTP_11, "reason_phrase": exchange.reason},
        )

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: _Pool,
        origin: tuple[str, str, int],
        request: httpx.Request,
        seconds: float | None,
    ) -> _Connection:
        scheme, host, port = origin
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"WireTransport speaks http and https, not {scheme!r}", request=request
            )
        secure = scheme == "https"
        if secure and self._ssl is None:
            self._ssl = _client_context()
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    lambda: _Connection(pool, origin),
                    host,
                    port,
                    ssl=self._ssl if secure else None,
                    server_hostname=host if secure else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection to {host}:{port} within {seconds:g} s", request=request
            ) from None
        except OSError as exc:  # refused, unreachable, a name that does not resolve, TLS
            raise httpx.ConnectError(
                f"could not connect to {host}:{port}: {exc}", request=request
            ) from exc
        pool.add(connection)
        return connection

    async def aclose(self) -> None:
        await self._pools.aclose()


def _request_bytes(request: httpx.Request, body: bytes) -> bytes:
    """The request line, headers and body as they go on the wire."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        if name.lower() not in _DROPPED_REQUEST_HEADERS:
            lines.append(b"%s: %s\r\n" % (name, value))
    if body or request.method in _WITH_BODY:
        lines.append(b"content-length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    head = b"".join(lines)
    # A line break inside a name or value would end the header early and start
    # another: one break per line, and no bare carriage return, or the request is
    # refused before it is sent.
    if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines):
        raise httpx.LocalProtocolError(
            "a request header holds a line break; headers are single lines", request=request
        )
    return head + body
