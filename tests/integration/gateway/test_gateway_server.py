"""The gateway's server honours a stop asked before it took the signals over.

`gemini-guard serve` handles SIGTERM itself until uvicorn installs its own handlers. Its
handler raises KeyboardInterrupt in whatever runs at that moment, and when that is a
finalizer Python prints the exception and goes on; so the handler also sets an event,
and the server, once started, stops at once when it finds it set."""

from __future__ import annotations

import asyncio
import threading

from gemini_guard.clock import FakeClock
from gemini_guard.emulator.server import bind_socket
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.server import _config, _Server
from tests.integration.gateway.conftest import gateway_config


async def _serve(stop_asked: threading.Event) -> tuple[bool, bool]:
    """(whether the server ended by itself, whether it had started). It is given up
    to 20 s to start and then a few of its main loop's ticks (0.1 s each) to end."""
    gateway, guard = build_gateway(gateway_config("http://127.0.0.1:9"), clock=FakeClock())
    sock = bind_socket("127.0.0.1", 0)
    server = _Server(_config(gateway, log_level="warning", grace=1), stop_asked)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.wait(
            {serving, asyncio.ensure_future(server.ready.wait())},
            timeout=20,
            return_when=asyncio.FIRST_COMPLETED,
        )
        done, _ = await asyncio.wait({serving}, timeout=0.5)
        return bool(done), server.ready.is_set()
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await gateway.aclose()
        await guard.aclose()


async def test_a_stop_asked_before_the_start_ends_the_server_once_started() -> None:
    asked = threading.Event()
    asked.set()
    assert await _serve(asked) == (True, True)


async def test_without_a_stop_the_server_keeps_serving() -> None:
    ended, started = await _serve(threading.Event())
    assert started
    assert not ended
