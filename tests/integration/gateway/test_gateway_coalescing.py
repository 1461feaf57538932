"""Identical requests at once through the gateway make one upstream request: while
one is upstream, the identical requests of the same token wait for its answer. The
upstream holds its answer until every request is in, so they overlap for sure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from gemini_guard.cache.response import ResponseCache
from gemini_guard.clock import FakeClock
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.server import GatewayServer
from gemini_guard.gateway.server import serve_async as serve_gateway
from tests.integration.gateway.conftest import FLASH, TOKEN, gateway_config
from tests.support.held_upstream import HeldUpstream, held_upstream, until

OTHER_TOKEN = "gg-client-token-coalesce-other-3a4b"
ASK = {
    "contents": [{"role": "user", "parts": [{"text": "What is 2 + 2?"}]}],
    "generationConfig": {"temperature": 0},
}


@pytest.fixture(autouse=True)
def other_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_OTHER_TOKEN", OTHER_TOKEN)


@asynccontextmanager
async def gateway(
    upstream: HeldUpstream, cache: Any = "memory://"
) -> AsyncIterator[tuple[GatewayServer, ResponseCache]]:
    config = gateway_config(
        upstream.base_url,
        cache=cache,
        gateway={
            "tokens": [
                {"name": "app", "token_env": "GATEWAY_TEST_TOKEN"},
                {"name": "other", "token_env": "GATEWAY_TEST_OTHER_TOKEN"},
            ]
        },
    )
    built, guard = build_gateway(config, clock=FakeClock())
    assert guard.cache is not None
    try:
        async with serve_gateway(built) as running:
            yield running, guard.cache
    finally:
        await built.aclose()
        await guard.aclose()


async def ask(running: GatewayServer, token: str = TOKEN) -> httpx.Response:
    async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
        return await http.post(
            f"/v1beta/models/{FLASH}:generateContent",
            json=ASK,
            headers={"x-goog-api-key": token},
        )


async def test_identical_requests_at_once_make_one_upstream_request() -> None:
    async with held_upstream() as upstream, gateway(upstream) as (running, cache):
        asked = asyncio.gather(*(ask(running) for _ in range(5)))
        waiting = cache.async_coalescer.waiting
        await until(
            lambda: upstream.arrived >= 1 and waiting() == 4,
            lambda: f"{upstream.arrived} upstream, {waiting()} waiting at the gateway",
        )
        upstream.release.set()
        replies = await asked
        stats = cache.stats()
    assert upstream.arrived == 1
    assert [r.status_code for r in replies] == [200] * 5
    assert len({r.content for r in replies}) == 1  # the one answer, as the API sent it
    verdicts = sorted(r.headers["x-gemini-guard-cache"] for r in replies)
    assert verdicts == ["coalesced"] * 4 + ["miss"]
    assert all(r.headers["x-gemini-guard-model"] == FLASH for r in replies)
    assert (stats.misses, stats.coalesced, stats.hits) == (1, 4, 0)


async def test_two_tokens_asking_at_once_do_not_share_a_request() -> None:
    async with held_upstream() as upstream, gateway(upstream) as (running, cache):
        asked = asyncio.gather(ask(running, TOKEN), ask(running, OTHER_TOKEN))
        await until(lambda: upstream.arrived == 2, lambda: f"{upstream.arrived} upstream")
        assert cache.async_coalescer.waiting() == 0
        upstream.release.set()
        replies = await asked
    assert [r.headers["x-gemini-guard-cache"] for r in replies] == ["miss", "miss"]


async def test_with_coalescing_off_each_request_goes_upstream() -> None:
    cache = {"url": "memory://", "coalesce": False}
    async with held_upstream() as upstream, gateway(upstream, cache) as (running, _):
        asked = asyncio.gather(*(ask(running) for _ in range(3)))
        await until(lambda: upstream.arrived == 3, lambda: f"{upstream.arrived} upstream")
        upstream.release.set()
        replies = await asked
    assert [r.headers["x-gemini-guard-cache"] for r in replies] == ["miss"] * 3


async def test_the_first_caller_going_away_does_not_cancel_the_others_answer() -> None:
    async with held_upstream() as upstream, gateway(upstream) as (running, cache):
        first = asyncio.ensure_future(ask(running))
        await until(lambda: upstream.arrived == 1, lambda: f"{upstream.arrived} upstream")
        others = asyncio.gather(ask(running), ask(running))
        waiting = cache.async_coalescer.waiting
        await until(lambda: waiting() == 2, lambda: f"{waiting()} waiting at the gateway")
        first.cancel()  # the leader's client closes its connection
        with pytest.raises(asyncio.CancelledError):
            await first
        upstream.release.set()
        replies = await others
    assert upstream.arrived == 1
    assert [r.status_code for r in replies] == [200, 200]
    assert [r.headers["x-gemini-guard-cache"] for r in replies] == ["coalesced"] * 2
