"""The gateway's server honours a stop asked before it took the signals over.

`gemini-guard serve` handles SIGTERM itself until uvicorn installs its own handlers. Its
handler raises KeyboardInterrupt in whatever runs at that moment, and when that is a
finalizer Python prints the exception and goes on; so the handler also sets an event,
and the server, once started, stops at once when it finds it set."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gemini_guard.clock import FakeClock
from gemini_guard.emulator.server import bind_socket
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.server import _config, _Server
from tests.integration.gateway.conftest import gateway_config


@asynccontextmanager
async def _serving(
    stop_asked: threading.Event,
) -> AsyncIterator[tuple[_Server, asyncio.Task[None]]]:
    """The gateway's server, started (up to 20 s) and shut down after the block."""
    gateway, guard = build_gateway(gateway_config("http://127.0.0.1:9"), clock=FakeClock())
    sock = bind_socket("127.0.0.1", 0)
    server = _Server(_config(gateway, log_level="warning", grace=1), stop_asked)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(server.ready.wait(), timeout=20)
        yield server, serving
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await gateway.aclose()
        await guard.aclose()


async def test_a_stop_asked_before_the_start_ends_the_server_once_started() -> None:
    asked = threading.Event()
    asked.set()
    async with _serving(asked) as (_, serving):
        await asyncio.wait_for(asyncio.shield(serving), timeout=20)  # it ends by itself


async def test_without_a_stop_the_server_keeps_serving() -> None:
    async with _serving(threading.Event()) as (server, serving):
        # Its startup, where a stop asked earlier is acted on, is over: nothing told it
        # to exit, so its loop serves on.
        assert not server.should_exit
        assert not serving.done()
