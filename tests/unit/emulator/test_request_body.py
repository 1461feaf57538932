"""Request bodies: both key styles accepted, unknown names and bad values refused."""

from __future__ import annotations

from typing import Any

import pytest

from gemini_guard.emulator.error_bodies import ErrorReply
from gemini_guard.emulator.request_body import (
    camel,
    normalize_count_tokens_request,
    normalize_generate_request,
    snake,
)

CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]


def _normalize(body: Any) -> dict[str, Any] | ErrorReply:
    return normalize_generate_request(body, output_token_limit=65536, model="gemini-2.5-flash")


def _message(reply: dict[str, Any] | ErrorReply) -> str:
    assert isinstance(reply, ErrorReply), reply
    assert isinstance(reply.body, dict)
    message: str = reply.body["error"]["message"]
    return message


def test_case_conversions() -> None:
    assert camel("max_output_tokens") == "maxOutputTokens"
    assert snake("maxOutputTokens") == "max_output_tokens"
    assert camel("text") == "text"


def test_camel_and_snake_case_give_the_same_request() -> None:
    camel_body = {
        "contents": CONTENTS,
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinking_budget": 0}},
    }
    snake_body = {
        "contents": CONTENTS,
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "generation_config": {"max_output_tokens": 5, "thinking_config": {"thinking_budget": 0}},
    }
    assert _normalize(camel_body) == _normalize(snake_body)
    normal = _normalize(snake_body)
    assert isinstance(normal, dict)
    assert normal["generationConfig"]["maxOutputTokens"] == 5


def test_unknown_names_are_reported_at_their_place() -> None:
    message = _message(_normalize({"contents": CONTENTS, "stream": True}))
    assert message == 'Invalid JSON payload received. Unknown name "stream": Cannot find field.'
    message = _message(_normalize({"contents": CONTENTS, "generationConfig": {"temprature": 1}}))
    assert "Unknown name \"temprature\" at 'generation_config'" in message
    message = _message(_normalize({"contents": [{"parts": [{"txt": "x"}]}]}))
    assert "at 'contents[0].parts[0]'" in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"temperature": 2.5}, "generation_config.temperature: must be between 0 and 2"),
        ({"topP": -0.1}, "generation_config.top_p: must be between 0 and 1"),
        ({"candidateCount": 0}, "generation_config.candidate_count: must be between 1 and 8"),
        (
            {"maxOutputTokens": 70000},
            "generation_config.max_output_tokens: must be between 1 and 65536",
        ),
        (
            {"temperature": "hot"},
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
        ({"topK": 2.5}, "Invalid value at 'generation_config.top_k' (TYPE_INT32), 2.5"),
    ],
)
def test_out_of_range_and_mistyped_parameters(config: dict[str, Any], expected: str) -> None:
    assert expected in _message(_normalize({"contents": CONTENTS, "generationConfig": config}))


def test_edges_of_ranges_are_accepted() -> None:
    for config in ({"temperature": 0}, {"temperature": 2.0}, {"topP": 1}, {"candidateCount": 8}):
        assert isinstance(_normalize({"contents": CONTENTS, "generationConfig": config}), dict)


def test_whole_number_floats_are_accepted_for_integer_fields() -> None:
    # The SDK serialises top_k as 1.0; proto JSON, and so the real API, accepts it.
    config = {"topK": 1.0, "candidateCount": 2.0, "maxOutputTokens": 64.0}
    assert isinstance(_normalize({"contents": CONTENTS, "generationConfig": config}), dict)


def test_roles_empty_parts_and_safety_enums_are_checked_like_the_api() -> None:
    bad_role = [{"role": "assistant", "parts": [{"text": "hi"}]}]
    assert _message(_normalize({"contents": bad_role})) == "Please use a valid role: user, model."
    empty_text = [{"role": "user", "parts": [{"text": ""}]}]
    assert "parts[0].data: required oneof field 'data'" in _message(
        _normalize({"contents": empty_text})
    )
    threshold = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_MEDIUM"}
    message = _message(_normalize({"contents": CONTENTS, "safetySettings": [threshold]}))
    assert message.startswith("Invalid value at 'safety_settings[0].threshold'")
    assert '"BLOCK_MEDIUM"' in message
    good = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
    assert isinstance(_normalize({"contents": CONTENTS, "safety_settings": [good]}), dict)


def test_missing_contents_and_empty_parts() -> None:
    assert "contents is not specified" in _message(_normalize({}))
    assert "parts must not be empty" in _message(
        _normalize({"contents": [{"role": "user", "parts": []}]})
    )


def test_pro_cannot_turn_thinking_off() -> None:
    body = {"contents": CONTENTS, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    reply = normalize_generate_request(body, output_token_limit=65536, model="gemini-2.5-pro")
    assert "only works in thinking mode" in _message(reply)
    assert isinstance(_normalize(body), dict)


def test_a_body_that_is_not_an_object() -> None:
    assert "Root element must be a message" in _message(_normalize([1, 2]))


def test_count_tokens_bodies() -> None:
    assert normalize_count_tokens_request({"contents": CONTENTS}) == {"contents": CONTENTS}
    wrapped = {"generate_content_request": {"contents": CONTENTS}}
    assert normalize_count_tokens_request(wrapped) == {
        "generateContentRequest": {"contents": CONTENTS}
    }
    assert isinstance(normalize_count_tokens_request({"prompt": "x"}), ErrorReply)
