"""The Guard's own work around each attempt: chain order, timeouts, shrinking, options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types

from gemini_guard.call import AttemptPlan
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


def test_attempt_timeout_reaches_the_sdk_in_real_milliseconds(client: genai.Client) -> None:
    scaled = Guard(client=client, clock=ScaledClock(10))
    plan = AttemptPlan("gemini-2.5-flash", 1, timeout=5.0)
    cfg = scaled._config(None, plan, types.GenerateContentConfig)
    assert cfg.http_options.timeout == 500  # 5 clock seconds at 10x
    plain = Guard(client=client, clock=FakeClock())
    cfg = plain._config({"temperature": 0.5}, plan, types.GenerateContentConfig)
    assert (cfg.http_options.timeout, cfg.temperature) == (5000, 0.5)
    # the caller's own shorter timeout wins
    own = types.GenerateContentConfig(http_options=types.HttpOptions(timeout=1200))
    assert plain._config(own, plan, types.GenerateContentConfig).http_options.timeout == 1200
    assert own.http_options is not None
    assert own.http_options.timeout == 1200  # the caller's object is not modified
    assert plain._config(own, AttemptPlan("m", 1, None), types.GenerateContentConfig) is own


def test_shrunk_attempt_lowers_thinking_and_output(client: genai.Client) -> None:
    guard = Guard(client=client, clock=FakeClock())
    plan = AttemptPlan("gemini-2.5-pro", 2, timeout=None, shrink=True)
    cfg = guard._config(None, plan, types.GenerateContentConfig)
    assert cfg.max_output_tokens == 2048
    assert cfg.thinking_config.thinking_budget == 512
    small = types.GenerateContentConfig(
        max_output_tokens=100, thinking_config=types.ThinkingConfig(thinking_budget=0)
    )
    cfg = guard._config(small, plan, types.GenerateContentConfig)
    assert (cfg.max_output_tokens, cfg.thinking_config.thinking_budget) == (100, 0)
    dynamic = {"thinking_config": {"thinking_budget": -1}}
    cfg = guard._config(dynamic, plan, types.GenerateContentConfig)
    assert cfg.thinking_config.thinking_budget == 512
    level = Guard(client=client, clock=FakeClock())._config(
        None, AttemptPlan("gemini-3-pro-preview", 2, None, shrink=True), types.GenerateContentConfig
    )
    assert level.thinking_config.thinking_level == types.ThinkingLevel.LOW
    assert level.thinking_config.thinking_budget is None


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


def test_a_client_timeout_as_strict_as_the_attempts_needs_no_per_request_config() -> None:
    client = genai.Client(
        api_key="AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE1234567",
        http_options=types.HttpOptions(timeout=30_000),
    )
    try:
        guard = Guard(client=client, clock=FakeClock())
        plan = AttemptPlan("gemini-2.5-flash", 1, timeout=60.0)
        assert guard._config(None, plan, types.GenerateContentConfig) is None
        # a call's deadline can still make one attempt's limit stricter
        tight = AttemptPlan("gemini-2.5-flash", 3, timeout=4.0)
        cfg = guard._config(None, tight, types.GenerateContentConfig)
        assert cfg.http_options.timeout == 4000
    finally:
        client.close()
