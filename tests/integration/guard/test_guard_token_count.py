"""`Guard(token_counter=...)`: what a paced call reserves, against the emulator.

The real SDK through the Guard, the emulator on a loopback port. The emulator's
request log tells how many countTokens requests reached it; a limiter that notes
every reservation tells what the Guard reserved.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types

from gemini_guard.call import Permit
from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.guard import Guard
from gemini_guard.quota import QuotaLimiter
from gemini_guard.tokens import estimate_tokens
from gemini_guard.tokens.counter import ApiTokenCounter
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
KEY = "AIzaSyTOKENCOUNTKEY-do-not-log-0123456789"
PROMPT = "Summarise the plot of Hamlet in three sentences, for a reader of twelve."
SYSTEM = "You are a patient teacher who answers in plain words and short sentences."


def client_for(server: EmulatorServer) -> genai.Client:
    return emulator_client(server, KEY)


class NotingLimiter(QuotaLimiter):
    """The default limiter, noting the tokens of every reservation."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reserved: list[tuple[str, int]] = []

    def reserve(
        self, *, project: str, model: str, tokens: int, requests: int = 1, now_only: bool = False
    ) -> Permit:
        self.reserved.append((model, tokens))
        return super().reserve(
            project=project, model=model, tokens=tokens, requests=requests, now_only=now_only
        )

    async def areserve(
        self, *, project: str, model: str, tokens: int, requests: int = 1, now_only: bool = False
    ) -> Permit:
        self.reserved.append((model, tokens))
        return await super().areserve(
            project=project, model=model, tokens=tokens, requests=requests, now_only=now_only
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def emulator(tmp_path: Path, *faults: dict[str, Any], clock: Any = None) -> Any:
    scenario = Scenario(name="tokens", default_tier="tier1", faults=faults)  # type: ignore[arg-type]
    return serve(scenario, clock=clock, log_path=tmp_path / "requests.jsonl")


def seen(tmp_path: Path) -> Counter[tuple[str, str, int]]:
    """(method, model, status) -> requests the emulator answered."""
    lines = (tmp_path / "requests.jsonl").read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    return Counter((r["method"], r["model"], r["status"]) for r in records)


def guard_for(
    server: EmulatorServer, clock: FakeClock, token_counter: Any = "api", **options: Any
) -> tuple[Guard, NotingLimiter]:
    limiter = NotingLimiter(clock=clock, tier="free")
    options.setdefault("models", [FLASH])
    guard = Guard(
        client=client_for(server),
        clock=clock,
        quota=limiter,
        token_counter=token_counter,
        log=False,
        **options,
    )
    return guard, limiter


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    with emulator(tmp_path) as running:
        yield running


def test_a_repeated_prompt_is_counted_once_and_reserves_the_apis_figure(
    server: EmulatorServer, tmp_path: Path, clock: FakeClock
) -> None:
    guard, limiter = guard_for(server, clock)
    for _ in range(3):
        guard.models.generate_content(model=FLASH, contents=PROMPT)
    guard.models.generate_content(model=FLASH, contents=[PROMPT, "And then in one word."])
    assert seen(tmp_path)[("countTokens", FLASH, 200)] == 2
    assert seen(tmp_path)[("generateContent", FLASH, 200)] == 4
    # What the API answers for the same contents, asked directly.
    counted = guard.unguarded_client.models.count_tokens(model=FLASH, contents=PROMPT).total_tokens
    both = guard.unguarded_client.models.count_tokens(
        model=FLASH, contents=[PROMPT, "And then in one word."]
    ).total_tokens
    assert counted is not None
    assert both is not None
    assert both > counted
    assert limiter.reserved == [(FLASH, counted)] * 3 + [(FLASH, both)]
    assert isinstance(guard.token_counter, ApiTokenCounter)
    assert len(guard.token_counter) == 2
    guard.close()


def test_the_system_instruction_counts_as_the_server_counts_it(
    server: EmulatorServer, clock: FakeClock
) -> None:
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    guard, limiter = guard_for(server, clock)
    response = guard.models.generate_content(model=FLASH, contents=PROMPT, config=config)
    assert response.usage_metadata is not None
    server_count = response.usage_metadata.prompt_token_count
    assert limiter.reserved == [(FLASH, server_count)]
    # The estimate counts the contents alone, below what the server counted.
    estimating, noted = guard_for(server, clock, token_counter="estimate")
    estimating.models.generate_content(model=FLASH, contents=PROMPT, config=config)
    assert noted.reserved == [(FLASH, estimate_tokens(PROMPT))]
    assert server_count is not None
    assert estimate_tokens(PROMPT) < server_count
    guard.close()
    estimating.close()


def test_fallback_models_reuse_the_first_models_count(tmp_path: Path, clock: FakeClock) -> None:
    with emulator(tmp_path, {"kind": "overloaded", "models": (PRO,)}) as server:
        guard, limiter = guard_for(server, clock)
        response = guard.models.generate_content(model=PRO, contents=PROMPT)
        assert response.model_version == FLASH
        counts = seen(tmp_path)
        guard.close()
    assert counts[("generateContent", PRO, 503)] == 3  # fallback_after: 3 tries on pro
    assert counts[("countTokens", PRO, 200)] == 1  # counted once for the whole call
    assert counts[("countTokens", FLASH, 200)] == 0
    assert [model for model, _ in limiter.reserved] == [PRO, PRO, PRO, FLASH]
    assert {tokens for _, tokens in limiter.reserved} == {estimate_tokens(PROMPT)}


def test_a_failing_count_falls_back_to_the_estimate_and_warns_once_per_model(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fault = {"kind": "internal", "methods": ("countTokens",)}
    with emulator(tmp_path, fault) as server:
        guard, limiter = guard_for(server, clock, models=[FLASH, PRO])
        with caplog.at_level(logging.WARNING, logger="gemini_guard"):
            for model in (FLASH, FLASH, PRO):
                response = guard.models.generate_content(model=model, contents=PROMPT)
                assert response.model_version == model  # the calls themselves succeed
        counts = seen(tmp_path)
        guard.close()
    # Asked again on every call (a failed count is not remembered), once each: the
    # SDK does not retry it.
    assert counts[("countTokens", FLASH, 500)] == 2
    assert counts[("countTokens", PRO, 500)] == 1
    assert limiter.reserved == [(m, estimate_tokens(PROMPT)) for m in (FLASH, FLASH, PRO)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("countTokens failed for gemini-2.5-flash (server_error, HTTP 500")
    assert warnings[1].startswith("countTokens failed for gemini-2.5-pro (server_error, HTTP 500")
    assert KEY not in caplog.text


def test_a_count_that_times_out_falls_back_to_the_estimate(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The emulator holds countTokens for 20 of its seconds (0.5 s here) before a 504;
    # the counter gives up after 0.1 s.
    slow = {"kind": "deadline", "delay": 20, "methods": ("countTokens",)}
    with emulator(tmp_path, slow, clock=ScaledClock(40)) as server:
        client = client_for(server)
        counter = ApiTokenCounter(client, timeout=0.1)
        guard, limiter = guard_for(server, clock, token_counter=counter)
        assert guard.token_counter is counter
        with caplog.at_level(logging.WARNING, logger="gemini_guard"):
            response = guard.models.generate_content(model=FLASH, contents=PROMPT)
        assert response.model_version == FLASH
        guard.close()
    assert limiter.reserved == [(FLASH, estimate_tokens(PROMPT))]
    assert "countTokens failed for gemini-2.5-flash (timeout" in caplog.text


async def test_async_calls_count_once_and_fall_back_on_a_fault(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fault = {"kind": "overloaded", "models": (PRO,), "methods": ("countTokens",)}
    with emulator(tmp_path, fault) as server:
        guard, limiter = guard_for(server, clock, models=[FLASH, PRO])
        for _ in range(2):
            await guard.aio.models.generate_content(model=FLASH, contents=PROMPT)
        stream = await guard.aio.models.generate_content_stream(model=FLASH, contents=PROMPT)
        chunks = [chunk async for chunk in stream]
        assert chunks
        with caplog.at_level(logging.WARNING, logger="gemini_guard"):
            response = await guard.aio.models.generate_content(model=PRO, contents=PROMPT)
        assert response.model_version == PRO
        counts = seen(tmp_path)
        await guard.aclose()
    counted = estimate_tokens(PROMPT)  # the emulator's tokenizer is the estimate's rule
    assert counts[("countTokens", FLASH, 200)] == 1  # two calls and a stream
    assert counts[("countTokens", PRO, 503)] == 1
    assert limiter.reserved == [(FLASH, counted)] * 3 + [(PRO, estimate_tokens(PROMPT))]
    assert "countTokens failed for gemini-2.5-pro (overloaded, HTTP 503" in caplog.text


def test_a_sync_stream_reserves_the_count(
    server: EmulatorServer, tmp_path: Path, clock: FakeClock
) -> None:
    guard, limiter = guard_for(server, clock)
    chunks = list(guard.models.generate_content_stream(model=FLASH, contents=PROMPT))
    assert chunks
    guard.models.generate_content(model=FLASH, contents=PROMPT)
    assert seen(tmp_path)[("countTokens", FLASH, 200)] == 1
    assert limiter.reserved == [(FLASH, estimate_tokens(PROMPT))] * 2
    guard.close()


def test_nothing_is_counted_without_pacing(
    server: EmulatorServer, tmp_path: Path, clock: FakeClock
) -> None:
    guard = Guard(
        client=client_for(server), models=[FLASH], clock=clock, quota=False, token_counter="api"
    )
    guard.models.generate_content(model=FLASH, contents=PROMPT)
    assert seen(tmp_path)[("countTokens", FLASH, 200)] == 0
    assert seen(tmp_path)[("generateContent", FLASH, 200)] == 1


def test_the_cache_keeps_the_most_recently_used_counts(
    server: EmulatorServer, tmp_path: Path
) -> None:
    counter = ApiTokenCounter(client_for(server), max_entries=2)
    for prompt in ("a" * 40, "b" * 80, "a" * 40, "c" * 120, "a" * 40, "b" * 80):
        assert counter.count(FLASH, prompt, None) == len(prompt) // 4
    # a, b counted; a remembered; c counted and b dropped; a remembered; b again.
    assert seen(tmp_path)[("countTokens", FLASH, 200)] == 4
    assert len(counter) == 2
    # A count for one model is not another's.
    assert counter.count(PRO, "a" * 40, None) == 10
    assert seen(tmp_path)[("countTokens", PRO, 200)] == 1
    assert not any(KEY in key for key in counter._entries)


def test_a_function_counts_and_a_failing_one_falls_back(
    server: EmulatorServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, Any, Any]] = []

    def by_words(model: str, contents: Any, config: Any) -> int:
        calls.append((model, contents, config))
        return 3 * len(str(contents).split())

    guard, limiter = guard_for(server, clock, token_counter=by_words)
    guard.models.generate_content(model=f"models/{FLASH}", contents=PROMPT)
    assert calls == [(FLASH, PROMPT, None)]
    assert limiter.reserved == [(FLASH, 3 * len(PROMPT.split()))]

    def broken(model: str, contents: Any, config: Any) -> int:
        raise RuntimeError("the tokenizer service is down")

    guard, limiter = guard_for(server, clock, token_counter=broken)
    with caplog.at_level(logging.WARNING, logger="gemini_guard"):
        for _ in range(2):
            guard.models.generate_content(model=FLASH, contents=PROMPT)
    assert limiter.reserved == [(FLASH, estimate_tokens(PROMPT))] * 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "token_counter 'broken' failed for gemini-2.5-flash" in warnings[0]
    assert "the tokenizer service is down" in warnings[0]
