"""The gateway's server writes a response's head and body in one write, and a stream's
head at once.

A real uvicorn serves a small ASGI app on loopback with the gateway's protocols, on
both of uvicorn's parsers and both event loops; real clients read the answers. What the
socket carries cannot show how many writes made it, so each connection's transport is
also watched: every write it is asked for is recorded on its way to the real one."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gemini_guard.gateway.server import uvicorn_options
from gemini_guard.joined_writes import (
    HeadWithBody,
    JoinedH11Protocol,
    JoinedHttpToolsProtocol,
    joined_protocol,
)
from tests.support.recorded_writes import serving_recorded

PARSERS = ["h11", "httptools"]


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    body = b"hello, " + scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("parser", PARSERS)
async def test_each_whole_answer_is_one_write_of_its_head_and_body(parser: str) -> None:
    writes: list[bytes] = []
    async with (
        serving_recorded(_hello, joined_protocol(parser), writes) as url,
        httpx.AsyncClient() as client,
    ):
        for path in ("/one", "/two", "/three"):  # one kept connection, three answers
            answer = await client.get(url + path)
            assert answer.status_code == 200
            assert answer.text == f"hello, {path}"
    assert len(writes) == 3
    for write, path in zip(writes, ("/one", "/two", "/three"), strict=True):
        assert write.startswith(b"HTTP/1.1 200 ")
        assert write.endswith(b"\r\n\r\nhello, " + path.encode())


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_stream_gets_its_head_before_its_first_piece_is_made(parser: str) -> None:
    go_on = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        # The first piece comes once the client has the head (or after 5 s, so that
        # a held head fails the test rather than hanging it).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(go_on.wait(), 5)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})

    writes: list[bytes] = []
    async with (
        serving_recorded(stream, joined_protocol(parser), writes) as url,
        httpx.AsyncClient() as client,
    ):
        async with asyncio.timeout(10):
            async with client.stream("GET", url + "/events") as answer:
                assert answer.status_code == 200
                assert writes[:1]
                assert writes[0].startswith(b"HTTP/1.1 200 ")
                assert writes[0].endswith(b"\r\n\r\n")  # the head alone
                go_on.set()
                assert await answer.aread() == b"data: 1\n\ndata: 2\n\n"


@pytest.mark.parametrize("parser", PARSERS)
async def test_an_answer_to_head_is_written_without_a_body(parser: str) -> None:
    writes: list[bytes] = []
    async with (
        serving_recorded(_hello, joined_protocol(parser), writes) as url,
        httpx.AsyncClient() as client,
    ):
        async with asyncio.timeout(10):
            answer = await client.head(url + "/x")
            assert answer.status_code == 200
            assert answer.headers["content-length"] == str(len(b"hello, /x"))
            assert answer.content == b""
            # The connection is still good for the next request.
            assert (await client.get(url + "/y")).text == "hello, /y"


@pytest.mark.parametrize("parser", PARSERS)
async def test_an_error_written_as_the_connection_closes_reaches_the_client(
    parser: str,
) -> None:
    writes: list[bytes] = []
    async with serving_recorded(_hello, joined_protocol(parser), writes) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")  # uvicorn answers 400 and closes
        async with asyncio.timeout(10):
            answer = await reader.read()  # to the end: the connection was closed
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("parser", PARSERS)
async def test_connections_of_a_socket_handed_over_by_descriptor_do_not_delay_writes(
    parser: str,
) -> None:
    """uvicorn takes such a socket for a Unix one, and asyncio and uvloop leave Nagle's
    algorithm on for its connections: a write after an unanswered one waited for the
    client's delayed ACK."""
    writes: list[bytes] = []
    delays: list[int] = []
    served = serving_recorded(
        _hello, joined_protocol(parser), writes, delays=delays, by_descriptor=True
    )
    async with served as url, httpx.AsyncClient() as client:
        assert (await client.get(url + "/a")).text == "hello, /a"
    assert delays == [0]


def test_the_gateway_serves_with_the_joined_protocols() -> None:
    assert uvicorn_options(grace=1)["http"] is JoinedHttpToolsProtocol
    assert uvicorn_options(grace=1, http="httptools")["http"] is JoinedHttpToolsProtocol
    assert uvicorn_options(grace=1, http="h11")["http"] is JoinedH11Protocol
    with pytest.raises(ValueError, match="unknown HTTP parser 'h2'"):
        joined_protocol("h2")


async def test_a_head_held_when_the_connection_is_closed_is_written_first() -> None:
    """A head with nothing after it in the turn (closed at once) still goes out."""
    server_side, client_side = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, server_side)
    joined = HeadWithBody(transport)
    joined.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
    assert joined.get_write_buffer_size() > 0  # held, not yet written
    joined.close()
    client_side.setblocking(False)
    received = b""
    async with asyncio.timeout(10):
        while not received.endswith(b"\r\n\r\n"):
            received += await loop.sock_recv(client_side, 1024)
    client_side.close()
    assert received == b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
