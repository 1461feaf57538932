"""LiteLLM, unchanged, as a client of the gateway: its Gemini provider pointed at the
gateway with `api_base`, a gateway token as its `api_key`. The emulator is the
upstream; LiteLLM's own retries are off, so what it gets is the gateway's doing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gemini_guard.clock import FakeClock
from tests.integration.gateway.conftest import FLASH, PRO, TOKEN, Stack, gateway_stack

# Pydantic warns about LiteLLM's TypedDicts when LiteLLM first builds them, mid-stream;
# the warnings-are-errors setting would make that LiteLLM's failure. Not ours to fix.
# (One item "is using", several "are using", as pydantic words it.)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Items? .* on TypedDict class .* (is|are) using the `ReadOnly` qualifier:UserWarning"
)


@pytest.fixture(scope="module")
def litellm() -> Any:
    # Its price map is read from the package, not fetched (there is no network here).
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    return litellm


@pytest.fixture
async def pro_down() -> AsyncIterator[Stack]:
    scenario = {
        "name": "pro-down",
        "default_tier": "tier1",
        "quotas": False,
        "faults": [{"kind": "overloaded", "models": [PRO], "probability": 1.0}],
    }
    async for stack in gateway_stack(scenario, FakeClock(), models=[PRO, FLASH], cache="memory://"):
        yield stack


def _ask(litellm: Any, stack: Stack, model: str, **options: Any) -> Any:
    """`litellm.completion` as an application would call it (in a thread: the
    gateway runs on this test's event loop)."""
    return litellm.completion(
        model=f"gemini/{model}",
        api_base=f"{stack.gateway.base_url}/v1beta",
        api_key=options.pop("api_key", TOKEN),
        messages=[{"role": "user", "content": "Say hi in five words."}],
        num_retries=0,
        **options,
    )


async def test_litellm_is_answered_through_the_gateway(litellm: Any, pro_down: Stack) -> None:
    reply = await asyncio.to_thread(_ask, litellm, pro_down, FLASH)
    assert reply.model == FLASH
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 0
    assert pro_down.upstream(FLASH)["admitted"] == 1


async def test_a_503_storm_on_one_model_is_served_by_the_gateways_fallback(
    litellm: Any, pro_down: Stack
) -> None:
    replies = [await asyncio.to_thread(_ask, litellm, pro_down, PRO) for _ in range(3)]
    for reply in replies:
        assert reply.model == FLASH  # LiteLLM reports the model that answered
        assert reply.choices[0].message.content
    assert pro_down.upstream(PRO)["rejected"].get("overloaded", 0) >= 1
    assert pro_down.upstream(FLASH)["admitted"] == 3


async def test_litellm_streams_through_the_gateway(litellm: Any, pro_down: Stack) -> None:
    def streamed() -> str:
        return "".join(
            chunk.choices[0].delta.content or ""
            for chunk in _ask(litellm, pro_down, PRO, stream=True)
        )

    text = await asyncio.to_thread(streamed)
    assert len(text.split()) >= 3
    assert pro_down.upstream(FLASH)["admitted"] == 1


async def test_litellm_repeats_are_answered_by_the_gateways_cache(
    litellm: Any, pro_down: Stack
) -> None:
    first = await asyncio.to_thread(_ask, litellm, pro_down, FLASH, temperature=0)
    second = await asyncio.to_thread(_ask, litellm, pro_down, FLASH, temperature=0)
    assert second.choices[0].message.content == first.choices[0].message.content
    assert pro_down.upstream(FLASH)["requests"] == 1


async def test_litellm_with_an_unknown_token_gets_the_gateways_refusal(
    litellm: Any, pro_down: Stack
) -> None:
    # LiteLLM's Gemini provider raises its BadRequestError for a 403, with the status.
    with pytest.raises(litellm.exceptions.BadRequestError) as refused:
        await asyncio.to_thread(_ask, litellm, pro_down, FLASH, api_key="AIza-a-google-key")
    assert refused.value.status_code == 403
    assert "GATEWAY_TOKEN_UNKNOWN" in str(refused.value)
    assert pro_down.upstream(FLASH)["requests"] == 0
