"""What the gateway's tests share: the emulator upstream, a gateway from a
configuration with the Guard behind it, the keys and the token in the environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gemini_guard.clock import Clock
from gemini_guard.config import GuardConfig
from gemini_guard.emulator import EmulatorServer, serve_async
from gemini_guard.gateway.build import build_gateway
from gemini_guard.gateway.server import GatewayServer
from gemini_guard.gateway.server import serve_async as serve_gateway
from tests.support.redis_server import redis_server

__all__ = ["redis_server"]

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
TOKEN = "gg-client-token-5e6f7a8b"
GOOGLE_KEY = "AIzaSyGATEWAYUPSTREAM-never-shown-0123"


@dataclass
class Stack:
    emulator: EmulatorServer
    gateway: GatewayServer

    def upstream(self, model: str) -> dict[str, Any]:
        cells = [
            m[model] for m in self.emulator.emulator.stats()["projects"].values() if model in m
        ]
        rejected: dict[str, int] = {}
        for cell in cells:
            for reason, n in cell["rejected"].items():
                rejected[reason] = rejected.get(reason, 0) + n
        return {
            "requests": sum(c["requests"] for c in cells),
            "admitted": sum(c["admitted"] for c in cells),
            "rejected": rejected,
        }


def gateway_config(base_url: str, **extra: Any) -> GuardConfig:
    return GuardConfig.model_validate(
        {
            "models": [FLASH, LITE],
            "base_url": base_url,
            "projects": [{"name": "main", "api_key_env": "GATEWAY_TEST_GOOGLE_KEY"}],
            "telemetry": {"log": False},
            "gateway": {"tokens": [{"name": "app", "token_env": "GATEWAY_TEST_TOKEN"}]},
            **extra,
        }
    )


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_GOOGLE_KEY", GOOGLE_KEY)
    monkeypatch.setenv("GATEWAY_TEST_TOKEN", TOKEN)


async def gateway_stack(scenario: Any, clock: Clock, **config: Any) -> AsyncIterator[Stack]:
    async with serve_async(scenario, clock=clock) as emulator:
        gateway, guard = build_gateway(gateway_config(emulator.base_url, **config), clock=clock)
        try:
            async with serve_gateway(gateway) as server:
                yield Stack(emulator, server)
        finally:
            await gateway.aclose()
            await guard.aclose()
