"""A real asyncio transport whose writes are recorded on their way: how tests see
what a server wrote, write by write, without a mock between it and the socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from socket import IPPROTO_TCP, TCP_NODELAY
from typing import Any

import uvicorn

from gemini_guard.emulator.server import bind_socket
from gemini_guard.gateway.server import _Server


class RecordingTransport(asyncio.Transport):
    """`transport`, each write it is asked for appended to `writes` before it goes."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        super().__init__()
        self._real = transport
        self._writes = writes

    def write(self, data: Any) -> None:
        if data:  # an empty write sends nothing (h11 makes one to end a message)
            self._writes.append(bytes(data))
        self._real.write(data)

    def __getattribute__(self, name: str) -> Any:
        if name in ("write", "_real", "_writes", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "_real"), name)


def recorded_protocol(
    base: type[asyncio.Protocol], writes: list[bytes], delays: list[int] | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's protocol `base` on a transport that records its writes in `writes`
    (and in `delays`, whether each connection's socket has Nagle's algorithm on)."""
    parent: Any = base

    class Recorded(parent):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(RecordingTransport(transport, writes))
            if delays is not None:
                sock = transport.get_extra_info("socket")
                delays.append(0 if sock.getsockopt(IPPROTO_TCP, TCP_NODELAY) else 1)

    return Recorded


@asynccontextmanager
async def serving_recorded(
    app: Any,
    protocol: type[asyncio.Protocol],
    writes: list[bytes],
    *,
    delays: list[int] | None = None,
    by_descriptor: bool = False,
) -> AsyncIterator[str]:
    """`app` served by uvicorn on loopback with `protocol`, its writes recorded; yields
    the base URL. `by_descriptor`: uvicorn is handed the listening socket's descriptor,
    as `serve --workers` hands it."""
    sock = bind_socket("127.0.0.1", 0)
    config = uvicorn.Config(
        app,
        fd=sock.fileno() if by_descriptor else None,
        http=recorded_protocol(protocol, writes, delays),
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=2,  # an answer stuck in a failed test ends the server too
    )
    server = _Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=None if by_descriptor else [sock]))
    try:
        await asyncio.wait_for(server.ready.wait(), timeout=20)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
        sock.close()
