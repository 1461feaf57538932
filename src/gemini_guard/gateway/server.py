"""Serving the gateway with uvicorn: in the background for tests, in the foreground
for `gemini-guard serve`.

On SIGTERM uvicorn stops accepting connections and lets requests in flight finish for
`grace` seconds (their quota slots settle as their answers arrive) before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from gemini_guard.emulator.server import bind_socket
from gemini_guard.gateway.app import Gateway
from gemini_guard.joined_writes import HTTP_PARSERS, joined_protocol

__all__ = ["HTTP_PARSERS", "LOOPS", "GatewayServer", "run", "serve_async", "uvicorn_options"]


@dataclass(frozen=True, slots=True)
class GatewayServer:
    base_url: str
    port: int
    gateway: Gateway


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stop_asked: threading.Event | None = None) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._stop_asked = stop_asked

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # A stop asked before uvicorn took the signals over (see `run`): shut down now,
        # as uvicorn would have on the signal.
        if self._stop_asked is not None and self._stop_asked.is_set():
            self.should_exit = True
        self.ready.set()


# uvicorn's choices: "auto" takes uvloop when it is installed (the `server` extra
# installs it), else asyncio's loop.
LOOPS = ("auto", "asyncio", "uvloop")


def uvicorn_options(*, grace: int, loop: str = "auto", http: str = "auto") -> dict[str, Any]:
    """How uvicorn serves the gateway, in one process or several (`--workers`)."""
    return {
        "loop": loop,
        "http": joined_protocol(http),
        # The app's lifespan: at shutdown a worker's app closes its gateway and Guard
        # (`build.app_from_environment`).
        "lifespan": "on",
        # uvicorn says only what goes wrong: the access log is the gateway's own,
        # without keys or tokens.
        "log_level": "warning",
        "access_log": False,
        # X-Forwarded-For / -Proto rewrite the client's address and scheme, which the
        # gateway never reads; the middleware cost ~4% of a request here.
        "proxy_headers": False,
        "timeout_graceful_shutdown": grace,
    }


def _config(
    gateway: Gateway, *, grace: int, loop: str = "auto", http: str = "auto"
) -> uvicorn.Config:
    return uvicorn.Config(gateway.app, **uvicorn_options(grace=grace, loop=loop, http=http))


@contextlib.asynccontextmanager
async def serve_async(
    gateway: Gateway, *, host: str = "127.0.0.1", port: int = 0, grace: int = 10
) -> AsyncIterator[GatewayServer]:
    """Serve `gateway` on the running loop; yields once it accepts connections."""
    sock = bind_socket(host, port)
    bound = int(sock.getsockname()[1])
    server = _Server(_config(gateway, grace=grace))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    try:
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            task.result()
            raise RuntimeError(f"the gateway on {host}:{bound} failed to start")
        yield GatewayServer(f"http://{host}:{bound}", bound, gateway)
    finally:
        ready.cancel()
        server.should_exit = True
        await task
        sock.close()


def run(
    gateway: Gateway,
    *,
    sock: socket.socket,
    grace: int = 10,
    loop: str = "auto",
    http: str = "auto",
    stop_asked: threading.Event | None = None,
) -> None:
    """Serve in the foreground until SIGTERM or Ctrl-C.

    `stop_asked`: set by the caller's own signal handler, which stands until uvicorn
    installs its handlers when it starts serving. A signal raises KeyboardInterrupt in
    whatever code runs at that moment, and when that is a finalizer Python prints the
    exception and goes on: the server, once started, stops at once if the event is set,
    so such a signal is not lost."""
    config = _config(gateway, grace=grace, loop=loop, http=http)
    _collect_less()
    _Server(config, stop_asked).run(sockets=[sock])


def _collect_less() -> None:
    """Garbage collection tuned for a server process that serves and does little else.

    What was built to start (the configuration, the SDK's and pydantic's types, the
    routes) lives as long as the process: frozen, the collector stops walking it over
    and over. A request makes and drops a few hundred objects, nearly all freed by
    reference counting; at the default threshold (700) the young generation was
    collected every few requests. Measured (`python -m bench gateway --baseline`), this
    and the dropped proxy-headers middleware together: 461 -> 372 µs of CPU per request
    at 64 in flight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
