"""The gateway's upstream transport on real loopback sockets: what it does with
connections (kept, reused, dropped), timeouts, TLS, compression and bad input."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from gemini_guard.call.transport import read_body
from gemini_guard.call.wire_transport import WireTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Upstream:
    base_url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


class ThenClose(bytes):
    """An answer after which the upstream closes the connection."""


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and body, or None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def _answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        % (len(body), extra)
    ) + body


@contextlib.asynccontextmanager
async def upstream(
    answer: Callable[[bytes, Upstream], Awaitable[bytes | None]],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Upstream]:
    """A keep-alive HTTP/1.1 server on loopback: `answer(request, upstream)` gives the
    bytes to send (None: close the connection instead; `ThenClose`: close after)."""
    scheme = "https" if ssl_context is not None else "http"
    state = Upstream(base_url="")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while (request := await _read_request(reader)) is not None:
                state.requests.append(request)
                sent = await answer(request, state)
                if sent is None:
                    break
                writer.write(sent)
                await writer.drain()
                if isinstance(sent, ThenClose):
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    state.base_url = f"{scheme}://localhost:{port}" if ssl_context else f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


async def _ok(request: bytes, state: Upstream) -> bytes:
    return _answer(b'{"n": %d}' % len(state.requests))


async def test_requests_one_after_another_share_one_connection() -> None:
    transport = WireTransport()
    async with upstream(_ok) as up, httpx.AsyncClient(transport=transport) as client:
        answers = [
            (await client.post(f"{up.base_url}/v1beta/x", json={"i": i})).json() for i in range(5)
        ]
    assert answers == [{"n": n} for n in range(1, 6)]
    assert up.connections == 1


async def test_the_request_goes_out_as_httpx_built_it() -> None:
    async with upstream(_ok) as up, httpx.AsyncClient(transport=WireTransport()) as client:
        await client.post(
            f"{up.base_url}/v1beta/models/m:generateContent?alt=sse&x=%2F",
            content=b'{"a": 1}',
            headers={"x-goog-api-key": "upstream-key", "X-Custom": "Kept-Case"},
        )
    head, _, body = up.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1beta/models/m:generateContent?alt=sse&x=%2F HTTP/1.1"
    assert b"X-Custom: Kept-Case" in lines
    assert b"x-goog-api-key: upstream-key" in lines
    assert b"content-length: 8" in lines
    assert sum(line.lower().startswith(b"content-length") for line in lines) == 1
    assert body == b'{"a": 1}'


async def test_overlapping_requests_each_get_a_connection_and_their_own_answer() -> None:
    async def slow_echo(request: bytes, state: Upstream) -> bytes:
        await asyncio.sleep(0)  # let the others arrive
        return _answer(request.partition(b"\r\n\r\n")[2])

    async with upstream(slow_echo) as up, httpx.AsyncClient(transport=WireTransport()) as client:
        answers = await asyncio.gather(
            *(client.post(f"{up.base_url}/x", json={"i": i}) for i in range(8))
        )
    assert [a.json() for a in answers] == [{"i": i} for i in range(8)]
    assert 1 < up.connections <= 8


async def test_a_connection_the_upstream_closed_while_idle_is_not_reused() -> None:
    async def once(request: bytes, state: Upstream) -> bytes | None:
        # Answer, then close: the connection the transport kept is gone.
        return _answer(b"{}", extra=b"connection: close\r\n")

    async with upstream(once) as up, httpx.AsyncClient(transport=WireTransport()) as client:
        for _ in range(3):
            assert (await client.post(f"{up.base_url}/x", json={})).status_code == 200
    assert up.connections == 3


async def test_a_kept_connection_closed_as_a_get_goes_out_is_tried_once_more() -> None:
    # The upstream drops a kept connection (an idle timeout) just as a request arrives
    # on it: a GET is sent again on a new connection; a POST, which the upstream may
    # have acted on, fails as it came (the guarded path decides whether to retry).
    async def drop_the_second(request: bytes, state: Upstream) -> bytes | None:
        return None if len(state.requests) in (2, 5) else _answer(b'{"ok": 1}')

    async with upstream(drop_the_second) as up, httpx.AsyncClient(transport=WireTransport()) as c:
        first = await c.get(f"{up.base_url}/v1beta/models")
        again = await c.get(f"{up.base_url}/v1beta/models")
        await c.get(f"{up.base_url}/v1beta/models")  # on the new connection, kept
        with pytest.raises(httpx.RemoteProtocolError, match="before it sent an answer"):
            await c.post(f"{up.base_url}/x", json={})
    assert (first.json(), again.json()) == ({"ok": 1}, {"ok": 1})
    assert up.connections == 2
    assert len(up.requests) == 5


async def test_an_answer_abandoned_midway_closes_its_connection() -> None:
    async def stream_then_hold(request: bytes, state: Upstream) -> bytes | None:
        if len(state.requests) == 1:
            # A chunked stream that has not ended: the first event, then nothing.
            return (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n7\r\ndata: 1\r\n"
            )
        return _answer(b"{}")

    async with upstream(stream_then_hold) as up, httpx.AsyncClient(transport=WireTransport()) as c:
        async with c.stream("POST", f"{up.base_url}/x", json={}) as streamed:
            first = await anext(streamed.aiter_raw())
        # Gone before the stream ended: the next request needs a connection of its own.
        assert (await c.post(f"{up.base_url}/x", json={})).status_code == 200
    assert first == b"data: 1"
    assert up.connections == 2


async def test_a_large_answer_read_slowly_arrives_whole() -> None:
    payload = bytes(range(256)) * (3 * 4096 + 17)  # about 3 MB: reading pauses and resumes

    async def big(request: bytes, state: Upstream) -> bytes:
        return _answer(payload)

    async with upstream(big) as up, httpx.AsyncClient(transport=WireTransport()) as client:
        async with client.stream("POST", f"{up.base_url}/x", json={}) as streamed:
            pieces = []
            async for piece in streamed.aiter_raw():
                pieces.append(piece)
                await asyncio.sleep(0)
        again = await client.post(f"{up.base_url}/x", json={})
    assert b"".join(pieces) == payload
    assert again.content == payload
    assert up.connections == 1


async def test_a_large_answer_left_unread_does_not_stall_its_connection() -> None:
    # One byte over the megabyte at which reading pauses: the pause and the answer's
    # end come in the same read. Left unread, the connection still reads the next answer.
    payload = b"z" * ((1 << 20) + 1)

    async def big_then_small(request: bytes, state: Upstream) -> bytes:
        return _answer(payload if len(state.requests) == 1 else b"{}")

    timeout = httpx.Timeout(5, read=2)
    async with (
        upstream(big_then_small) as up,
        httpx.AsyncClient(transport=WireTransport(), timeout=timeout) as client,
    ):
        async with client.stream("POST", f"{up.base_url}/x", json={}) as streamed:
            assert streamed.status_code == 200
            for _ in range(200):  # let the answer arrive, unread
                await asyncio.sleep(0)
        small = await client.post(f"{up.base_url}/x", json={})
    assert small.content == b"{}"
    assert up.connections == 1


async def test_an_upstream_that_does_not_answer_is_a_read_timeout() -> None:
    async def never(request: bytes, state: Upstream) -> bytes | None:
        await asyncio.Event().wait()
        return None

    async with upstream(never) as up, httpx.AsyncClient(transport=WireTransport()) as client:
        with pytest.raises(httpx.ReadTimeout, match=r"sent nothing for 0\.05 s"):
            await client.post(f"{up.base_url}/x", json={}, timeout=httpx.Timeout(5, read=0.05))
        assert up.connections == 1


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    async def garbage(request: bytes, state: Upstream) -> bytes:
        return b"<html>not http</html>\r\n\r\n"

    async with upstream(garbage) as up, httpx.AsyncClient(transport=WireTransport()) as client:
        with pytest.raises(httpx.RemoteProtocolError, match=r"not valid HTTP/1\.1"):
            await client.post(f"{up.base_url}/x", json={})


async def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    async def early_hints(request: bytes, state: Upstream) -> bytes:
        return b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n" + _answer(b'{"ok": 1}')

    async with upstream(early_hints) as up, httpx.AsyncClient(transport=WireTransport()) as c:
        answers = [await c.post(f"{up.base_url}/x", json={}) for _ in range(2)]
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"ok": 1})] * 2
    assert "link" not in answers[0].headers
    assert up.connections == 1


async def test_an_answer_that_ends_with_its_connection_is_whole() -> None:
    # No length and no chunks: HTTP/1.0's way, which some proxies' error pages still use.
    async def until_close(request: bytes, state: Upstream) -> bytes:
        page = b"HTTP/1.0 502 Bad Gateway\r\ncontent-type: text/html\r\n\r\n<html>down</html>"
        return ThenClose(page)

    async with upstream(until_close) as up, httpx.AsyncClient(transport=WireTransport()) as c:
        answers = [await c.post(f"{up.base_url}/x", json={}) for _ in range(2)]
    assert [(a.status_code, a.text) for a in answers] == [(502, "<html>down</html>")] * 2
    assert up.connections == 2  # not kept: its end was the connection's


async def test_a_compressed_answer_is_decoded_by_httpx_however_it_is_read() -> None:
    document = b'{"candidates": []}' * 50

    async def gzipped(request: bytes, state: Upstream) -> bytes:
        return _answer(gzip.compress(document), extra=b"content-encoding: gzip\r\n")

    async with upstream(gzipped) as up:
        transport = WireTransport()
        try:
            request = httpx.Request("POST", f"{up.base_url}/x", json={})
            whole = await transport.handle_async_request(request)
            assert await read_body(whole) == document  # the guarded path's quick read
            await whole.aclose()
            async with httpx.AsyncClient(transport=transport) as client:
                assert (await client.post(f"{up.base_url}/x", json={})).content == document
        finally:
            await transport.aclose()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async with upstream(_ok) as up:
        transport = WireTransport()
        request = httpx.Request("POST", f"{up.base_url}/x", headers={"x-a": "b"}, content=b"{}")
        request.headers.raw  # noqa: B018 (httpx builds the raw list lazily)
        request.headers._list[-1] = (b"x-a", b"x-a", b"b\r\nx-injected: 1")  # what no SDK sends
        try:
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await transport.handle_async_request(request)
        finally:
            await transport.aclose()
    assert up.requests == []


async def test_https_verifies_the_upstream_certificate() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with upstream(_ok, ssl_context=server_context) as up:
        async with httpx.AsyncClient(transport=WireTransport(ssl_context=trusting)) as client:
            answers = [(await client.post(f"{up.base_url}/x", json={})).json() for _ in range(2)]
        assert answers == [{"n": 1}, {"n": 2}]
        assert up.connections == 1
        # Certifi's roots (the default) do not know this authority: refused, as it should be.
        async with httpx.AsyncClient(transport=WireTransport()) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(f"{up.base_url}/x", json={})


async def test_head_and_other_schemes_are_refused_with_a_reason() -> None:
    transport = WireTransport()
    try:
        with pytest.raises(httpx.UnsupportedProtocol, match="HEAD"):
            await transport.handle_async_request(httpx.Request("HEAD", "http://127.0.0.1:9/"))
        with pytest.raises(httpx.UnsupportedProtocol, match="'ftp'"):
            await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1:9/"))
    finally:
        await transport.aclose()
