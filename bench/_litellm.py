"""LiteLLM's Router as a contender of `guard_vs_peers`, on the emulator's clock.

The Router (pip package `litellm`, in the `bench` extra) is pointed at the emulator
with `api_base` (its Gemini provider appends `/models/{m}:generateContent` to it, so
the base ends in `/v1beta`), one deployment per model, the chain as its `fallbacks`,
everything else at its defaults. `LITELLM_LOCAL_MODEL_COST_MAP=True` keeps it from
fetching its price map.

Time. The Router runs on real time; the emulator and the other contenders run on a
`ScaledClock`. Two things of the Router's take time:
- its backoff sleeps between retries go through its host object (`PythonHost.sleep`,
  the one place its core sleeps); `Router.from_config(config, host)` takes a host, so
  the bench passes one whose sleeps are the clock's: emulated seconds, exactly;
- its cooldown of a deployment lasts `cooldown_time` real seconds: the bench passes
  its default (5 s) divided by the clock's factor, i.e. 5 emulated seconds.
What cannot be scaled: its per-minute failure counters (which decide a cooldown)
count over a real minute, that is `factor` emulated minutes. That only makes a
cooldown more likely; with one deployment per model group the Router cools a
deployment down only when all of at least 1,000 requests in that minute failed (or
on a 429 in a group of several deployments), so it does not matter here.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from gemini_guard.cli.demo import DEMO_KEY, FLASH, CallTally, RunResult, run_workers, server_counts
from gemini_guard.clock import Clock
from gemini_guard.emulator import EmulatorServer

__all__ = ["available", "run_litellm_router", "warm_up"]

_DEFAULT_COOLDOWN = 5.0  # seconds: litellm's DEFAULT_COOLDOWN_TIME_SECONDS


def available() -> str | None:
    """None when the Router can run here, else why not (for the report)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm  # noqa: F401
    except ImportError as exc:
        return f"litellm is not installed ({exc}): pip install 'gemini-guard[bench]'"
    try:
        from litellm.router_python_host import PythonHost  # noqa: F401
    except ImportError:
        # Seen on 2026-12-05: pip resolves the bench extra's `litellm[proxy]` to 1.108.7,
        # which lacks the module (1.109.3 and 1.110.2 have it; their proxy extra needs a
        # `litellm-proxy` package the index does not carry).
        return (
            f"LiteLLM {importlib.metadata.version('litellm')} has no "
            "litellm.router_python_host, which puts the Router's sleeps on the "
            "emulator's clock; `pip install -U litellm` (without the [proxy] extra) "
            "installs a release that has it"
        )
    # Its loggers print every failed call with a traceback; the tables tell the story.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return None


def _host(clock: Clock) -> Any:
    from litellm.router_python_host import PythonHost

    class ClockHost(PythonHost):  # type: ignore[misc]  # litellm is not followed by mypy
        """The Router's host with the bench clock's sleeps."""

        __slots__ = ("_clock",)

        def __init__(self, clock: Clock) -> None:
            self._clock = clock

        def sleep(self, seconds: float) -> Awaitable[None]:
            return self._clock.asleep(seconds)

        def sleep_sync(self, seconds: float) -> None:
            self._clock.sleep(seconds)

    return ClockHost(clock)


def _router(server: EmulatorServer, chain: tuple[str, ...], clock: Clock) -> Any:
    from litellm import Router
    from litellm.router import router_arguments
    from litellm.router_config import build_router_config

    factor = float(getattr(clock, "factor", 1.0))
    model_list = [
        {
            "model_name": model,
            "litellm_params": {
                "model": f"gemini/{model}",
                "api_key": DEMO_KEY,
                "api_base": f"{server.base_url}/v1beta",
            },
        }
        for model in chain
    ]
    arguments = router_arguments(
        model_list=model_list,
        fallbacks=[{chain[0]: list(chain[1:])}] if len(chain) > 1 else [],
        cooldown_time=_DEFAULT_COOLDOWN / factor,
    )
    return Router.from_config(build_router_config(arguments), _host(clock))


async def run_litellm_router(
    server: EmulatorServer,
    prompts: list[str],
    *,
    clock: Clock,
    concurrency: int,
    chain: tuple[str, ...],
    name: str = "LiteLLM Router",
    interval: float = 0.0,
) -> RunResult:
    """The prompts through a LiteLLM Router over `chain` (requests and status counts
    from the emulator, since the Router's own retries are not visible from outside)."""
    router = _router(server, chain, clock)
    tally = CallTally(clock)
    started = clock.monotonic()
    acompletion: Callable[..., Awaitable[Any]] = router.acompletion

    async def one(prompt: str) -> None:
        began = tally.begin()
        try:
            response = await acompletion(
                model=chain[0], messages=[{"role": "user", "content": prompt}]
            )
        except Exception:  # the Router raises its own exception classes
            return
        tally.success(began, str(response.model).removeprefix("gemini/"))

    before = [server_counts(server, m) for m in chain]
    await run_workers(prompts, concurrency, one, clock=clock, interval=interval)
    after = [server_counts(server, m) for m in chain]
    sent = got_429 = got_5xx = 0
    for b, a in zip(before, after, strict=True):
        sent += a[0] - b[0]
        got_429 += a[1] - b[1]
        got_5xx += a[2] - b[2]
    return RunResult(
        name,
        len(prompts),
        tally.succeeded,
        sent,
        got_429,
        got_5xx,
        clock.monotonic() - started,
        0.0,
        tally.span,
        tuple(tally.served),
        tally.started,
    )


def warm_up() -> None:
    """One call through a Router on a healthy emulator, so that the real seconds the
    Router spends on its first call (importing its provider code) are not counted in
    a scenario's emulated time (at x60 one real second is a minute of a blip)."""
    from gemini_guard.clock import SystemClock
    from gemini_guard.emulator import serve

    clock = SystemClock()
    with serve("healthy", clock=clock) as server:
        asyncio.run(
            run_litellm_router(server, ["warm up"], clock=clock, concurrency=1, chain=(FLASH,))
        )
