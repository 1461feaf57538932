"""The request path every entry point shares: one engine, two drivers, its ports.

    steps = engine.steps(chain, tokens=..., input_tokens_of=...)
    value, info = run_sync(steps, clock=clock, quota=engine.quota, send=send)
    value, info = await run_async(steps, clock=clock, quota=engine.quota, send=asend)

- `effects`: what the engine asks its drivers to do, `AttemptPlan`, `CallInfo`;
- `engine`: `Engine`, the logic of one call as sans-IO stages;
- `failure`: the error a failed call raises;
- `driver`: `run_sync` / `run_async`, one effect→handler table for both;
- `ports`: `QuotaGate`, `BreakerStore`, `Transport`: what the path needs from outside;
- `cache_stage`: the response cache as a stage of the path;
- `http`: a request at the HTTP level (routes, the model in the path or the body);
- `transport`: `GuardedTransport`, the path as an httpx transport (`guard.client`, the
  gateway); `aiohttp_transport`: httpx's API over aiohttp's connections.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemini_guard.call.driver import run_async, run_sync
    from gemini_guard.call.effects import (
        Admit,
        AttemptPlan,
        CallInfo,
        Confirm,
        Effect,
        Outcome,
        Record,
        Release,
        Reserve,
        Send,
        Settle,
        Steps,
        Tally,
        Wait,
    )
    from gemini_guard.call.engine import Engine
    from gemini_guard.call.ports import (
        AsyncBreakerStore,
        AsyncTransport,
        BreakerStore,
        NoQuota,
        Permit,
        QuotaGate,
        TallyingGate,
        Transport,
    )

# Loaded on first use: the quota limiter imports `gemini_guard.call.ports`, and the
# engine imports telemetry, which imports the limiter. Importing a port must not
# pull in the engine.
_LAZY = {
    "Admit": "gemini_guard.call.effects",
    "AsyncBreakerStore": "gemini_guard.call.ports",
    "AsyncTransport": "gemini_guard.call.ports",
    "AttemptPlan": "gemini_guard.call.effects",
    "BreakerStore": "gemini_guard.call.ports",
    "CallInfo": "gemini_guard.call.effects",
    "Confirm": "gemini_guard.call.effects",
    "Effect": "gemini_guard.call.effects",
    "Engine": "gemini_guard.call.engine",
    "NoQuota": "gemini_guard.call.ports",
    "Outcome": "gemini_guard.call.effects",
    "Permit": "gemini_guard.call.ports",
    "QuotaGate": "gemini_guard.call.ports",
    "Record": "gemini_guard.call.effects",
    "Release": "gemini_guard.call.effects",
    "Reserve": "gemini_guard.call.effects",
    "Send": "gemini_guard.call.effects",
    "Settle": "gemini_guard.call.effects",
    "Steps": "gemini_guard.call.effects",
    "Tally": "gemini_guard.call.effects",
    "TallyingGate": "gemini_guard.call.ports",
    "Transport": "gemini_guard.call.ports",
    "Wait": "gemini_guard.call.effects",
    "run_async": "gemini_guard.call.driver",
    "run_sync": "gemini_guard.call.driver",
}

__all__ = [
    "Admit",
    "AsyncBreakerStore",
    "AsyncTransport",
    "AttemptPlan",
    "BreakerStore",
    "CallInfo",
    "Confirm",
    "Effect",
    "Engine",
    "NoQuota",
    "Outcome",
    "Permit",
    "QuotaGate",
    "Record",
    "Release",
    "Reserve",
    "Send",
    "Settle",
    "Steps",
    "Tally",
    "TallyingGate",
    "Transport",
    "Wait",
    "run_async",
    "run_sync",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
