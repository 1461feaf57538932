"""The preflight check remembers a clean model+config per shape: it must never serve a
verdict for a config that has changed since, or for a prompt the shape does not cover."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from gemini_guard.clock import FakeClock
from gemini_guard.errors import RequestRejected
from gemini_guard.validation import ModelCatalog, ModelInfo, preflight

FLASH = "gemini-2.5-flash"


def _strict() -> Any:
    check = preflight("strict")
    assert check is not None
    return check


def test_a_dict_config_mutated_between_calls_is_validated_again() -> None:
    check = _strict()
    config: dict[str, Any] = {"temperature": 0.5}
    check(FLASH, "hi", config)  # clean: remembered
    config["temperature"] = 7.0
    with pytest.raises(RequestRejected, match="temperature"):
        check(FLASH, "hi", config)
    config["temperature"] = 0.5
    check(FLASH, "hi", config)


def test_an_sdk_config_mutated_in_place_is_validated_again() -> None:
    check = _strict()
    config = types.GenerateContentConfig(max_output_tokens=100)
    check(FLASH, "hi", config)
    config.max_output_tokens = 10_000_000  # above the model's output limit
    with pytest.raises(RequestRejected, match="maxOutputTokens"):
        check(FLASH, "hi", config)


def test_a_nested_change_is_seen() -> None:
    check = _strict()
    setting = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    config: dict[str, Any] = {"safety_settings": [setting]}
    check(FLASH, "hi", config)
    setting["threshold"] = "BLOCK_EVERYTHING"
    with pytest.raises(RequestRejected, match="threshold"):
        check(FLASH, "hi", config)


def test_values_equal_in_python_but_not_to_the_api_stay_apart() -> None:
    # True == 1 and hash alike; the API takes 1 for candidateCount, not true.
    check = _strict()
    check(FLASH, "hi", {"candidate_count": 1})
    with pytest.raises(RequestRejected, match="candidateCount"):
        check(FLASH, "hi", {"candidate_count": True})


def test_a_clean_shape_still_checks_each_prompt() -> None:
    check = _strict()
    check(FLASH, "hi", None)
    with pytest.raises(RequestRejected, match="empty"):
        check(FLASH, "", None)
    with pytest.raises(RequestRejected, match="input tokens"):
        check(FLASH, "x" * (4 * 1_048_576 + 8), None)
    # The system instruction counts against the same limit as the prompt.
    config = {"system_instruction": "y" * (4 * 1_048_000)}
    check(FLASH, "hi", config)
    with pytest.raises(RequestRejected, match="input tokens"):
        check(FLASH, "x" * 4 * 1_000, config)


def test_a_bad_model_is_rejected_every_time() -> None:
    check = _strict()
    for _ in range(2):
        with pytest.raises(RequestRejected, match="retired"):
            check("gemini-pro", "hi", None)


def test_a_refreshed_catalog_is_asked_again() -> None:
    clock = FakeClock()
    listed = [ModelInfo(name=FLASH, input_token_limit=1000, output_token_limit=100)]

    def fetch() -> list[ModelInfo]:
        return list(listed)

    catalog = ModelCatalog(fetch, clock=clock, ttl=60)
    check = preflight("strict", catalog=catalog)
    assert check is not None
    check(FLASH, "hi", None)
    listed[:] = [ModelInfo(name="gemini-2.5-pro", input_token_limit=1000, output_token_limit=10)]
    check(FLASH, "hi", None)  # the old list is still fresh
    clock.advance(61)
    with pytest.raises(RequestRejected, match="not in the models list"):
        check(FLASH, "hi", None)


def test_a_config_that_cannot_be_frozen_is_still_checked() -> None:
    def tool(city: str) -> str:
        return city

    check = _strict()
    for _ in range(2):
        check(FLASH, "hi", {"tools": [tool]})
    with pytest.raises(RequestRejected, match="temperature"):
        check(FLASH, "hi", {"tools": [tool], "temperature": 9})


def test_a_plain_prompt_is_judged_by_its_length_exactly_at_the_token_limit() -> None:
    # The no-config fast path compares lengths: it must agree with the token rule
    # on both sides of the limit, after the model's verdict is remembered.
    from gemini_guard.tiers import model_spec
    from gemini_guard.tokens import CHARS_PER_TOKEN, estimate_text_tokens

    spec = model_spec(FLASH)
    assert spec is not None
    limit = spec.input_token_limit
    assert limit is not None
    check = _strict()
    check(FLASH, "hi", None)  # remembered: a clean verdict for (flash, no config)
    longest = "x" * (limit * CHARS_PER_TOKEN)
    assert estimate_text_tokens(longest) == limit
    check(FLASH, longest, None)  # exactly at the limit: passes
    with pytest.raises(RequestRejected, match="token"):
        check(FLASH, longest + "x", None)  # one character more: one token over
    with pytest.raises(RequestRejected, match="empty"):
        check(FLASH, "", None)
