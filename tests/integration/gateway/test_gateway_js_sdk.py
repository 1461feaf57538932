# ruff: noqa: E501  (the embedded JavaScript)
"""The official JavaScript SDK, unchanged, through the gateway: a gateway token as its
key, the Guard's fallback behind it."""

from __future__ import annotations

import asyncio
import json

import pytest

from gemini_guard.clock import FakeClock
from tests.integration.gateway.conftest import PRO, TOKEN, Stack, gateway_stack
from tests.support.binaries import require_binary
from tests.support.js_sdk import install_js_sdk

SCRIPT = r"""
const { GoogleGenAI } = require("@google/genai");
const [baseUrl, token] = process.argv.slice(2);
(async () => {
  const ai = new GoogleGenAI({ apiKey: token, httpOptions: { baseUrl } });
  const response = await ai.models.generateContent({ model: "gemini-2.5-pro", contents: "Hello from node" });
  let streamed = "";
  for await (const chunk of await ai.models.generateContentStream({ model: "gemini-2.5-pro", contents: "Hello from node" })) {
    streamed += chunk.text ?? "";
  }
  let refused = null;
  try {
    const stranger = new GoogleGenAI({ apiKey: "not-a-gateway-token", httpOptions: { baseUrl } });
    await stranger.models.generateContent({ model: "gemini-2.5-flash", contents: "x" });
  } catch (e) {
    refused = e.status;
  }
  console.log(JSON.stringify({ text: response.text, streamed, model: response.modelVersion, refused }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.node
async def test_the_js_sdk_is_guarded_through_the_gateway() -> None:
    node = require_binary("node", why="to run the official JavaScript SDK against the gateway")
    cache = install_js_sdk()
    script = cache / "gateway_check.cjs"
    script.write_text(SCRIPT)
    scenario = {
        "name": "pro-down",
        "default_tier": "tier1",
        "quotas": False,
        "faults": [{"kind": "overloaded", "models": [PRO], "probability": 1.0}],
    }
    stack: Stack
    async for stack in gateway_stack(scenario, FakeClock()):
        process = await asyncio.create_subprocess_exec(
            node,
            str(script),
            stack.gateway.base_url,
            TOKEN,
            cwd=cache,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, err.decode()
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["text"]
        assert result["streamed"] == result["text"]
        assert result["model"] == "gemini-2.5-flash"  # pro is down: the chain answered
        assert result["refused"] == 403
        assert stack.upstream(PRO)["requests"] <= 8
