"""An upstream that sets a cookie on every answer and records the Cookie header of
every request it receives: how a test sees whether a cookie set for one caller
travels with another caller's request."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.loopback_app import ANSWER, serve_on_loopback


@dataclass
class CookieUpstream:
    base_url: str  # on "localhost": cookie jars refuse cookies set by a bare IP address
    cookies_seen: list[str | None] = field(default_factory=list)


@contextlib.asynccontextmanager
async def cookie_upstream() -> AsyncIterator[CookieUpstream]:
    upstream = CookieUpstream(base_url="")

    async def answer(request: web.Request) -> web.Response:
        upstream.cookies_seen.append(request.headers.get("Cookie"))
        response = web.json_response(ANSWER)
        response.set_cookie("upstream_session", f"caller-{len(upstream.cookies_seen)}")
        response.set_cookie("upstream_region", "west")  # two: a relay must keep both
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_on_loopback(app) as port:
        upstream.base_url = f"http://localhost:{port}"
        yield upstream
