"""The gateway's server honours a stop asked before it took the signals over, and a
worker's app writes what it kept for later when the server shuts down.

`gemini-guard serve` handles SIGTERM itself until uvicorn installs its own handlers. Its
handler raises KeyboardInterrupt in whatever runs at that moment, and when that is a
finalizer Python prints the exception and goes on; so the handler also sets an event,
and the server, once started, stops at once when it finds it set."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gemini_guard.clock import FakeClock
from gemini_guard.emulator.server import bind_socket
from gemini_guard.gateway.access_log import AccessLog
from gemini_guard.gateway.build import build_gateway, closed_at_shutdown
from gemini_guard.gateway.server import _config, _Server, uvicorn_options
from tests.integration.gateway.conftest import gateway_config


@asynccontextmanager
async def _serving(
    stop_asked: threading.Event,
) -> AsyncIterator[tuple[_Server, asyncio.Task[None]]]:
    """The gateway's server, started (up to 20 s) and shut down after the block."""
    gateway, guard = build_gateway(gateway_config("http://127.0.0.1:9"), clock=FakeClock())
    sock = bind_socket("127.0.0.1", 0)
    server = _Server(_config(gateway, grace=1), stop_asked)
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


async def test_a_workers_app_writes_its_pending_access_lines_at_shutdown(tmp_path: Path) -> None:
    """A worker stopped by SIGTERM ends by that signal once uvicorn has shut down, so
    what its app keeps for later (access lines, quota tallies) is written at the
    lifespan's shutdown, not at exit."""
    log_path = tmp_path / "access.jsonl"
    gateway, guard = build_gateway(
        gateway_config("http://127.0.0.1:9"),
        clock=FakeClock(),
        # Never written on a timer here: only a flush writes them.
        access_log=AccessLog(log_path.open("wb"), delay=3600),
    )
    app = closed_at_shutdown(gateway.app, gateway.aclose, guard.aclose)
    sock = bind_socket("127.0.0.1", 0)
    server = _Server(uvicorn.Config(app, **uvicorn_options(grace=1)))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(server.ready.wait(), timeout=20)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1beta/models/gemini-2.5-flash"
        async with httpx.AsyncClient() as http:
            # Refused by the gateway itself (no token): logged, nothing sent upstream.
            statuses = [(await http.post(f"{url}:generateContent")).status_code for _ in "ab"]
        assert statuses == [401, 401]
        assert log_path.read_bytes() == b""  # kept for later
    finally:
        server.should_exit = True
        await serving
        sock.close()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["status"] for line in lines] == [401, 401]


async def test_every_closer_runs_at_shutdown_and_a_failure_is_told() -> None:
    closed: list[str] = []

    async def first() -> None:
        closed.append("first")
        raise OSError("the store is gone")

    async def second() -> None:
        closed.append("second")

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app gets no lifespan messages")

    app = closed_at_shutdown(never_called, first, second)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": kind})
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan"}, inbox.get, send)
    assert closed == ["first", "second"]
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.failed", "message": "OSError: the store is gone"},
    ]
