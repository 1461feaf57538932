"""An upstream that holds every answer until the test releases it, and counts the
requests that reach it: how a test makes requests overlap without sleeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.loopback_app import ANSWER, serve_on_loopback


@dataclass
class HeldUpstream:
    base_url: str
    arrived: int = 0  # generateContent requests received, answered or not
    release: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def held_upstream() -> AsyncIterator[HeldUpstream]:
    upstream = HeldUpstream(base_url="")

    async def answer(request: web.Request) -> web.Response:
        upstream.arrived += 1
        await upstream.release.wait()
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    async with serve_on_loopback(app) as port:
        upstream.base_url = f"http://127.0.0.1:{port}"
        try:
            yield upstream
        finally:
            upstream.release.set()  # no answer left waiting when the server closes


async def until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    """Wait (on the real clock, up to 10 s) until `condition` holds; fail saying `what`
    was seen otherwise. A wait for a state, not a sleep standing in for a delay."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within 10 s: {what()}")
        await asyncio.sleep(0.005)
