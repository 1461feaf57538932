"""Cache keys: one request, one key, whatever its shape; different requests never share."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from gemini_guard.cache.keys import canonical_request, request_key

FLASH = "gemini-2.5-flash"


def key(contents: Any = "hi", config: Any = None, project: str = "p", model: str = FLASH) -> str:
    out = request_key(project=project, model=model, contents=contents, config=config)
    assert out is not None
    return out


def test_dicts_and_sdk_objects_in_either_case_give_one_key() -> None:
    shapes = [
        key(
            "hi", {"temperature": 0, "maxOutputTokens": 10, "thinkingConfig": {"thinkingBudget": 0}}
        ),
        key(
            [types.Content(role="user", parts=[types.Part(text="hi")])],
            types.GenerateContentConfig(
                temperature=0.0,
                max_output_tokens=10,
                thinking_config=types.ThinkingConfig(thinking_budget=0),
            ),
        ),
        key(
            [{"role": "user", "parts": [{"text": "hi"}]}],
            {
                "temperature": 0.0,
                "max_output_tokens": 10,
                "thinking_config": {"thinking_budget": 0},
            },
        ),
        key(
            types.Part(text="hi"),
            {
                "temperature": 0,
                "max_output_tokens": 10.0,
                "thinking_config": {"thinking_budget": 0},
            },
        ),
        key(
            "hi",
            {"temperature": 0, "maxOutputTokens": 10, "thinkingConfig": {"thinkingBudget": 0}},
            model=f"models/{FLASH}",
        ),
    ]
    assert len(set(shapes)) == 1


def test_volatile_fields_do_not_change_the_key() -> None:
    base = key("hi", {"temperature": 0})
    assert key("hi", {"temperature": 0, "http_options": {"timeout": 5000}}) == base
    assert key("hi", {"temperature": 0, "labels": {"team": "a"}}) == base
    assert (
        key(
            "hi",
            types.GenerateContentConfig(temperature=0, http_options=types.HttpOptions(timeout=1)),
        )
        == base
    )


@pytest.mark.parametrize(
    ("contents", "config"),
    [
        ("hi!", {"temperature": 0}),
        ("hi", {"temperature": 0.1}),
        ("hi", {"temperature": 0, "system_instruction": "be brief"}),
        ("hi", {"temperature": 0, "tools": [{"code_execution": {}}]}),
        ("hi", {"temperature": 0, "response_mime_type": "application/json"}),
        (["hi", "there"], {"temperature": 0}),
        ([{"role": "model", "parts": [{"text": "hi"}]}], {"temperature": 0}),
    ],
)
def test_any_real_difference_changes_the_key(contents: Any, config: Any) -> None:
    assert key(contents, config) != key("hi", {"temperature": 0})


def test_model_and_project_are_part_of_the_key() -> None:
    assert key(model="gemini-2.5-pro") != key()
    a, b = key(project="alpha"), key(project="beta")
    assert a != b
    assert a.startswith("alpha/")
    assert b.startswith("beta/")


def test_schema_property_names_keep_their_spelling() -> None:
    # Only the SDK's own field names are renamed; user names inside a schema are data.
    camel = {"response_schema": {"type": "OBJECT", "properties": {"maxTokens": {"type": "STRING"}}}}
    snake = {
        "response_schema": {"type": "OBJECT", "properties": {"max_tokens": {"type": "STRING"}}}
    }
    assert key("x", camel) != key("x", snake)
    canonical = canonical_request(model=FLASH, contents="x", config=camel)
    assert "maxTokens" in canonical.config["response_schema"]["properties"]


def test_requests_without_a_json_form_are_not_cached() -> None:
    def lookup_weather(city: str) -> str:
        return city

    assert (
        request_key(project="p", model=FLASH, contents="x", config={"tools": [lookup_weather]})
        is None
    )


def test_the_key_never_depends_on_the_api_key() -> None:
    secret = "AIzaSySECRET-0123456789"
    cfg = {"temperature": 0, "http_options": {"headers": {"x-goog-api-key": secret}}}
    out = key("hi", cfg)
    assert secret not in out
    assert out == key("hi", {"temperature": 0})
