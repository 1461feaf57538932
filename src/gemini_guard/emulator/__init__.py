"""A local Gemini API with real quotas, real error bodies and scripted outages.

    from gemini_guard.emulator import Emulator, serve

    emu = Emulator("free-tier", clock=FakeClock())     # in-process: emu.app is ASGI
    with serve("overload") as server:                  # uvicorn on a free loopback port
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.base_url))

Scenarios are data (TOML): see `load_scenario`, the built-ins in
`builtin_scenarios()`, and docs/emulator.md.
"""

from __future__ import annotations

from gemini_guard._extras import require

# The emulator is an ASGI app served by uvicorn: both come with the `server` extra.
require("starlette", "server", "the emulator")
require("uvicorn", "server", "the emulator")

from gemini_guard.emulator.app import API_VERSIONS, DroppedConnection, Emulator  # noqa: E402
from gemini_guard.emulator.scenario import (  # noqa: E402
    Fault,
    KeySpec,
    LatencyRule,
    LimitChange,
    LimitsSpec,
    Scenario,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
)
from gemini_guard.emulator.server import EmulatorServer, serve, serve_async  # noqa: E402

__all__ = [
    "API_VERSIONS",
    "DroppedConnection",
    "Emulator",
    "EmulatorServer",
    "Fault",
    "KeySpec",
    "LatencyRule",
    "LimitChange",
    "LimitsSpec",
    "Scenario",
    "builtin_scenarios",
    "load_scenario",
    "parse_scenario",
    "serve",
    "serve_async",
]
