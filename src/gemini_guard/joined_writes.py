"""A response's head goes out with its body, in one write (the gateway's and the
emulator's servers).

uvicorn's protocols write a response's status line and headers as soon as the app
starts the response, and its body as a second write. Each write is a system call, and
the first wakes the client, which reads the head, finds no body yet and sleeps again:
two wakeups of the client per answer where one would do. Behind the emulator at
concurrency 1 (stamps in a gateway served by uvicorn), the two writes took 95 µs and
one joined write 37 µs: on a machine with two cores, the woken client competes for a
core with the gateway still finishing its second write.

`HeadWithBody` wraps a connection's transport: a write that starts a response (its
status line) is held, and the next write, the body in the same turn of the event loop,
goes out joined to it. When no write follows in that turn (a stream whose first piece
is still to come, an answer to HEAD) the head is written at the start of the next
turn, so a stream's client still gets its headers at once. Closing the connection
writes what is held first.

`joined_protocol(http)` is uvicorn's HTTP protocol for `http` ("auto", "h11" or
"httptools") on such a transport, for `uvicorn.Config(http=...)`. It also turns
Nagle's algorithm off (TCP_NODELAY) on each connection. asyncio and uvloop do that for
TCP connections, but uvicorn takes a listening socket handed over by its descriptor
(how `serve --workers` shares its port) for a Unix one, and its connections kept
Nagle's delay: an answer's second write waited for the client's delayed ACK, 40 ms
(measured with `--workers 2`: 44 ms per request; 2.4 ms once the head went with the
body). A stream's pieces, written one by one, need the option itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "HTTP_PARSERS",
    "HeadWithBody",
    "JoinedH11Protocol",
    "JoinedHttpToolsProtocol",
    "joined_protocol",
]

# uvicorn's choices: "auto" takes httptools when it is installed (the `server` extra
# installs it), else h11.
HTTP_PARSERS = ("auto", "h11", "httptools")

# How every HTTP/1.x response (an interim one too) begins.
_STATUS_LINE = b"HTTP/1."


class HeadWithBody(asyncio.Transport):
    """`transport`, with a response's head held for the write that follows it."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._held: bytes | None = None
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[: len(_STATUS_LINE)] == _STATUS_LINE:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Each write goes out at once: Nagle's algorithm off."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):  # a Unix socket: nothing is delayed on it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class JoinedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, writing each response's head with its body."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(HeadWithBody(transport))


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: "auto" is h11
    JoinedHttpToolsProtocol: type[asyncio.Protocol] | None = None
else:

    class _JoinedHttpTools(HttpToolsProtocol):
        """uvicorn's httptools protocol, writing each response's head with its body."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            _no_delay(transport)
            super().connection_made(HeadWithBody(transport))

    JoinedHttpToolsProtocol = _JoinedHttpTools


def joined_protocol(http: str) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol for `http`, writing each response's head with its body."""
    if http not in HTTP_PARSERS:
        raise ValueError(f"unknown HTTP parser {http!r}: choose one of {', '.join(HTTP_PARSERS)}")
    if http == "h11" or JoinedHttpToolsProtocol is None:
        if http == "httptools":
            raise ValueError("the httptools parser is not installed: pip install httptools")
        return JoinedH11Protocol
    return JoinedHttpToolsProtocol
