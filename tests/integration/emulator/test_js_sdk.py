# ruff: noqa: E501  (the embedded JavaScript)
"""The official JavaScript SDK (@google/genai from npm) against the emulator."""

from __future__ import annotations

import json
import subprocess

import pytest

from gemini_guard.emulator import EmulatorServer
from tests.support.binaries import require_binary
from tests.support.js_sdk import install_js_sdk

SCRIPT = r"""
const { GoogleGenAI } = require("@google/genai");
const [baseUrl] = process.argv.slice(2);
(async () => {
  const ai = new GoogleGenAI({ apiKey: "js-key", httpOptions: { baseUrl } });
  const response = await ai.models.generateContent({ model: "gemini-2.5-flash", contents: "Hello from node" });
  let streamed = "";
  for await (const chunk of await ai.models.generateContentStream({ model: "gemini-2.5-flash", contents: "Hello from node" })) {
    streamed += chunk.text ?? "";
  }
  const counted = await ai.models.countTokens({ model: "gemini-2.5-flash", contents: "Hello from node" });
  let errorStatus = null;
  try {
    await ai.models.generateContent({ model: "gemini-0-nothing", contents: "x" });
  } catch (e) {
    errorStatus = e.status;
  }
  console.log(JSON.stringify({
    text: response.text, streamed, usage: response.usageMetadata,
    model: response.modelVersion, tokens: counted.totalTokens, errorStatus,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.node
def test_js_sdk_generates_streams_and_counts(healthy: EmulatorServer) -> None:
    node = require_binary("node", why="to run the official JavaScript SDK against the emulator")
    cache = install_js_sdk()
    script = cache / "emulator_check.cjs"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [node, str(script), healthy.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cache,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["text"]
    assert out["streamed"] == out["text"]
    assert out["model"] == "gemini-2.5-flash"
    assert out["tokens"] == 3  # "Hello from node": 3 words
    assert out["usage"]["promptTokenCount"] == 3
    assert out["errorStatus"] == 404
    # The JS SDK speaks v1beta; the emulator saw its requests under its own project.
    totals = healthy.emulator.stats()["totals"]
    assert totals["admitted"] >= 3
    assert totals["rejected"] == {"model_not_found": 1}
