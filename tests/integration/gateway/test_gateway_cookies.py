"""A cookie the upstream sets for one caller of the gateway never reaches the upstream
again with another caller's request: the gateway's upstream connection is shared by
every token, so a cookie kept there would tie strangers' requests together."""

from __future__ import annotations

import httpx

from gemini_guard.clock import FakeClock
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.server import serve_async as serve_gateway
from tests.integration.gateway.conftest import FLASH, TOKEN, gateway_config
from tests.support.cookie_upstream import cookie_upstream

BODY = {"contents": [{"role": "user", "parts": [{"text": "Say hi."}]}]}


async def test_an_upstream_cookie_is_not_sent_with_the_next_callers_request() -> None:
    async with cookie_upstream() as upstream:
        gateway, guard = build_gateway(gateway_config(upstream.base_url), clock=FakeClock())
        try:
            async with serve_gateway(gateway) as server:
                url = f"{server.base_url}/v1beta/models/{FLASH}:generateContent"
                for _caller in range(3):  # each a client of its own, with no cookies
                    async with httpx.AsyncClient() as client:
                        answer = await client.post(
                            url, json=BODY, headers={"x-goog-api-key": TOKEN}
                        )
                    assert answer.status_code == 200, answer.text
                    # Relayed as they came: both cookies, in two Set-Cookie headers.
                    cookies = answer.headers.get_list("set-cookie")
                    assert [c.split("=")[0] for c in cookies] == [
                        "upstream_session",
                        "upstream_region",
                    ]
        finally:
            await gateway.aclose()
            await guard.aclose()
    assert upstream.cookies_seen == [None, None, None]
