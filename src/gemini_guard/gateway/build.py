"""A gateway from the configuration: the Guard it builds, on the guarded transport.

    gateway = build_gateway(load_config("gemini-guard.toml"))

The Guard is the one `guard_from_config` makes (projects, pool, store, retry,
breakers, cache, telemetry); the gateway answers repeats from its response cache
(`gateway.cache`, per token) and sends every other checked request through its
HTTP-level path (`call.transport.GuardedTransport`) over its own HTTP/1.1 client
(`call.wire_transport`), to the config's `base_url` (Google's endpoint by default).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from gemini_guard.call.transport import GuardedTransport
from gemini_guard.call.wire_transport import WireTransport
from gemini_guard.clock import Clock
from gemini_guard.config import GuardConfig, load_config
from gemini_guard.errors import ConfigError
from gemini_guard.gateway.access_log import AccessLog, stderr_access_log
from gemini_guard.gateway.app import Gateway
from gemini_guard.gateway.auth import TokenTable
from gemini_guard.gateway.budgets import CallerBudgets
from gemini_guard.gateway.cache import GatewayCache
from gemini_guard.gateway.status import RecentEvents, status_page
from gemini_guard.guard import Guard, guard_from_config

__all__ = ["GOOGLE_ENDPOINT", "app_from_environment", "build_gateway", "closed_at_shutdown"]

GOOGLE_ENDPOINT = "https://generativelanguage.googleapis.com"


def build_gateway(
    config: GuardConfig,
    *,
    clock: Clock | None = None,
    environ: dict[str, str] | None = None,
    access_log: AccessLog | None = None,
    **guard_options: Any,
) -> tuple[Gateway, Guard]:
    """The gateway of `config` and the Guard behind it (close both when done).
    `access_log`: where its access lines go (None: the `gemini_guard.gateway.access`
    logger)."""
    tokens = TokenTable.from_section(
        config.gateway, environ=dict(os.environ if environ is None else environ)
    )
    if not len(tokens):
        raise ConfigError(
            "the gateway has no tokens: add a [[gateway.tokens]] entry (name and token_env "
            "or sha256) for each client; Google keys are never accepted from clients"
        )
    if clock is not None:
        guard_options["clock"] = clock
    guard = guard_from_config(config, **guard_options)
    base_url = config.base_url or GOOGLE_ENDPOINT
    transport = GuardedTransport(guard, ainner=WireTransport())
    budgets = CallerBudgets(tokens.callers(), store=config.store, clock=guard.clock)

    async def upstream_reachable() -> str | None:
        async with httpx.AsyncClient(transport=WireTransport(), timeout=3.0) as http:
            try:
                await http.get(f"{base_url}/v1beta/models", params={"pageSize": 1})
            except httpx.TransportError as exc:
                return f"{base_url} did not answer: {type(exc).__name__}"
        return None

    cache = None
    if guard.cache is not None and guard.cache_scope is not None:
        cache = GatewayCache(guard.cache, guard.cache_scope)
    recent = RecentEvents()
    guard.telemetry.add_sink(recent)
    metrics = guard.metrics.exposition if guard.metrics is not None else None
    gateway = Gateway(
        tokens=tokens,
        transport=transport,
        base_url=base_url,
        upstream_key=config.projects[0].api_key(),
        budgets=budgets,
        cache=cache,
        max_body_bytes=config.gateway.max_body_bytes,
        ready_checks=(("upstream", upstream_reachable),),
        metrics=metrics,
        status=lambda: status_page(recent),
        access_log=access_log,
    )
    return gateway, guard


def app_from_environment() -> Any:
    """The ASGI app for `uvicorn --factory` (several workers): the configuration
    named by GEMINI_GUARD_CONFIG. It closes its gateway and Guard when the server shuts
    down (the ASGI lifespan's shutdown), which writes the access lines and quota
    tallies still pending: a worker stopped by SIGTERM ends by that signal once uvicorn
    has shut down, so nothing registered to run at exit would."""
    gateway, guard = build_gateway(load_config(), access_log=stderr_access_log())
    return closed_at_shutdown(gateway.app, gateway.aclose, guard.aclose)


def closed_at_shutdown(app: ASGIApp, *closers: Callable[[], Awaitable[None]]) -> ASGIApp:
    """`app`, with `closers` run, in order, at the ASGI lifespan's shutdown."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                failed = []
                for close in closers:
                    try:
                        await close()
                    except Exception as exc:  # the others are still closed
                        failed.append(f"{type(exc).__name__}: {exc}")
                if failed:
                    await send({"type": "lifespan.shutdown.failed", "message": "; ".join(failed)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    return served
