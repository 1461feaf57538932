"""The Guard's own work around each attempt: chain order, timeouts, shrinking, options."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import types

from gemini_guard.call.http import shrunk_body
from gemini_guard.call.transport import GuardedTransport
from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.errors import ConfigError
from gemini_guard.guard import Guard, wrap


@pytest.fixture
def client() -> Iterator[genai.Client]:
    client = genai.Client(api_key="AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE1234567")
    yield client
    client.close()


def test_the_calls_model_goes_first_then_the_chain(client: genai.Client) -> None:
    guard = Guard(client=client, models=["models/gemini-2.5-pro", "gemini-2.5-flash"])
    assert guard._chain("gemini-2.5-flash") == ("gemini-2.5-flash", "gemini-2.5-pro")
    assert guard._chain("models/gemini-2.0-flash") == (
        "gemini-2.0-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
    )


URL = "https://generativelanguage.googleapis.com/v1beta/models/{}:generateContent"
ANSWER = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "Hi."}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1},
}


class Upstream(httpx.BaseTransport):
    """Answers every attempt at once and keeps it: what the path sent, as sent."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.sent.append(request)
        return httpx.Response(200, json=ANSWER)


def _send(guard: Guard, timeout: float | None = None, config: object = None) -> httpx.Request:
    """One generateContent through `guard`'s path; the attempt the upstream received."""
    upstream = Upstream()
    transport = GuardedTransport(guard, inner=upstream)
    body: dict[str, object] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    if config is not None:
        body["generationConfig"] = config
    with httpx.Client(transport=transport, timeout=timeout) as http:
        answer = http.post(URL.format("gemini-2.5-flash"), json=body)
    assert answer.status_code == 200
    (sent,) = upstream.sent
    return sent


def test_attempt_timeout_reaches_the_wire_in_real_seconds(client: genai.Client) -> None:
    scaled = Guard(client=client, clock=ScaledClock(10), log=False)
    assert _send(scaled).extensions["timeout"]["read"] == 6.0  # 60 clock seconds at 10x
    plain = Guard(client=client, clock=FakeClock(), log=False)
    assert _send(plain).extensions["timeout"]["read"] == 60.0
    # the caller's own shorter timeout (the client's, or the call's config) wins
    assert _send(plain, timeout=1.2).extensions["timeout"]["read"] == 1.2
    assert _send(plain, timeout=300.0).extensions["timeout"]["read"] == 60.0


def test_shrunk_attempt_lowers_thinking_and_output() -> None:
    def shrunk(model: str, config: dict[str, object] | None) -> dict[str, object]:
        body = json.dumps({"generationConfig": config} if config is not None else {})
        out = shrunk_body(body.encode(), model, max_output_tokens=2048, thinking_budget=512)
        config_out = json.loads(out)["generationConfig"]
        assert isinstance(config_out, dict)
        return config_out

    cfg = shrunk("gemini-2.5-pro", None)
    assert (cfg["maxOutputTokens"], cfg["thinkingConfig"]) == (2048, {"thinkingBudget": 512})
    small = {"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 0}}
    cfg = shrunk("gemini-2.5-pro", small)
    assert (cfg["maxOutputTokens"], cfg["thinkingConfig"]) == (100, {"thinkingBudget": 0})
    cfg = shrunk("gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": -1}})
    assert cfg["thinkingConfig"] == {"thinkingBudget": 512}  # dynamic thinking, capped
    cfg = shrunk("gemini-3-pro-preview", None)
    assert cfg["thinkingConfig"] == {"thinkingLevel": "LOW"}


class _DeadlineFirst(Upstream):
    """A 504 for the first attempt, then the answer `ok` for every other."""

    def __init__(self, ok: object) -> None:
        super().__init__()
        self.ok = ok

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.sent.append(request)
        if len(self.sent) == 1:
            error = {"code": 504, "message": "Deadline expired", "status": "DEADLINE_EXCEEDED"}
            return httpx.Response(504, json={"error": error})
        return httpx.Response(200, json=self.ok)


def test_the_guard_shrinks_the_retry_after_a_deadline(client: genai.Client) -> None:
    """A 504 is retried once with less thinking and a capped answer (the body the
    upstream received says so), on the same model."""

    guard = Guard(client=client, clock=FakeClock(), log=False, quota=False)
    upstream = _DeadlineFirst(ANSWER)
    with httpx.Client(transport=GuardedTransport(guard, inner=upstream)) as http:
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        assert http.post(URL.format("gemini-2.5-pro"), json=body).status_code == 200
    first, second = (json.loads(r.content) for r in upstream.sent)
    assert "generationConfig" not in first
    assert second["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512}
    assert second["generationConfig"]["maxOutputTokens"] == 2048
    assert upstream.sent[1].url.path.endswith("/gemini-2.5-pro:generateContent")


EMBEDDING = {"embedding": {"values": [0.1, 0.2]}}
EMBEDDINGS = {"embeddings": [{"values": [0.1, 0.2]}]}
CHAT = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 1},
}
BASE = "https://generativelanguage.googleapis.com/v1beta"


@pytest.mark.parametrize(
    ("url", "body", "ok"),
    [
        (
            f"{BASE}/models/gemini-embedding-001:embedContent",
            {"content": {"parts": [{"text": "hi"}]}},
            EMBEDDING,
        ),
        (
            f"{BASE}/models/gemini-embedding-001:batchEmbedContents",
            {
                "requests": [
                    {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hi"}]}}
                ]
            },
            EMBEDDINGS,
        ),
        (
            f"{BASE}/openai/chat/completions",
            {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]},
            CHAT,
        ),
    ],
    ids=["embedContent", "batchEmbedContents", "openai-chat"],
)
def test_a_request_without_generation_config_is_retried_as_it_was_after_a_deadline(
    client: genai.Client, url: str, body: dict[str, object], ok: object
) -> None:
    """Only generateContent's body has a generationConfig to shrink: an embedding
    request that gained one was refused (400, "Unknown name generationConfig"), and
    the OpenAI-compatible chat names its limits otherwise."""
    guard = Guard(client=client, clock=FakeClock(), log=False, quota=False)
    upstream = _DeadlineFirst(ok)
    with httpx.Client(transport=GuardedTransport(guard, inner=upstream)) as http:
        assert http.post(url, json=body).status_code == 200
    first, second = (json.loads(r.content) for r in upstream.sent)
    assert first == second == body


def test_bad_options_are_config_errors(client: genai.Client) -> None:
    with pytest.raises(ConfigError, match="tier 'gold'"):
        Guard(client=client, tier="gold")
    with pytest.raises(ConfigError, match=r"models=\['gemini-2.5-flash'\]"):
        Guard(client=client, models="gemini-2.5-flash")
    with pytest.raises(ConfigError, match=r"unknown scheme 'mysql'.*memory://"):
        Guard(client=client, store="mysql://localhost/state")
    with pytest.raises(ConfigError, match="names no database file"):
        Guard(client=client, store="sqlite:///")
    with pytest.raises(ConfigError, match="tier 'paid' is not one of: auto, free"):
        Guard(client=client, tier="paid")


def test_wrap_keeps_the_client(client: genai.Client) -> None:
    guard = wrap(client, models=["gemini-2.5-flash"], tier="tier1")
    assert guard.unguarded_client is client
    assert guard.tier == "tier1"


def test_a_client_timeout_as_strict_as_the_attempts_is_kept() -> None:
    client = genai.Client(
        api_key="AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE1234567",
        http_options=types.HttpOptions(timeout=30_000),
    )
    try:
        guard = Guard(client=client, clock=FakeClock(), log=False)
        # The SDK hands every request the client's 30 s: the policy's 60 s is looser.
        assert _send(guard, timeout=30.0).extensions["timeout"]["read"] == 30.0
    finally:
        client.close()
