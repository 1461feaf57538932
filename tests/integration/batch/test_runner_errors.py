"""`arun_batch` when a worker meets an unexpected error: the others are cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import types

from gemini_guard.batch import arun_batch
from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import serve
from gemini_guard.guard import Guard

# Every answer takes 60 emulated seconds, half a real second at x120: a request is
# still on the wire when the bad item is reached.
SLOW = {"name": "slow", "quotas": False, "latency": [{"distribution": "fixed", "seconds": 60}]}


def test_a_worker_error_cancels_the_requests_in_flight_then_is_raised() -> None:
    pulled: list[str] = []

    def requests() -> Iterator[Any]:
        for item in (
            {"id": "first", "prompt": "hi"},
            {"id": "bad"},
            {"id": "later", "prompt": "x"},
        ):
            pulled.append(str(item["id"]))
            yield item

    with serve(SLOW, clock=ScaledClock(120)) as server:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.base_url))
        guard = Guard(client=client, clock=FakeClock(), log=False, quota=False)

        async def run() -> set[asyncio.Task[Any]]:
            with pytest.raises(ValueError, match=r"request #2: .*prompt"):
                async for _ in arun_batch(guard, requests(), concurrency=2):
                    pass
            # Nothing the batch started is left running in the background.
            left = asyncio.all_tasks() - {asyncio.current_task()}
            await client.aio.aclose()
            return {t for t in left if not t.done()}

        assert asyncio.run(run()) == set()
    # The first worker was cancelled on its request: it did not go on to the third item.
    assert pulled == ["first", "bad"]
