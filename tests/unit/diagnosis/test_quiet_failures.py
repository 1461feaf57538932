"""Quiet failures: 200 answers without usable output, each classified with its fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import types

from gemini_guard import Category, diagnose, diagnose_response
from gemini_guard.diagnosis import HEALTHY, looks_like_response


def _answer(text: str | None, finish: str = "STOP", **usage: int) -> dict[str, Any]:
    parts = [] if text is None else [{"text": text}]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 5, **usage},
    }


BLOCKED_PROMPT = {
    "promptFeedback": {
        "blockReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ],
    },
    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
}
THINKING_ATE_IT = _answer(
    None, "MAX_TOKENS", candidatesTokenCount=0, thoughtsTokenCount=1021, totalTokenCount=1026
)


@pytest.mark.parametrize(
    ("response", "category", "reason", "retryable"),
    [
        (BLOCKED_PROMPT, Category.PROMPT_BLOCKED, "SAFETY", False),
        (
            {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}},
            Category.PROMPT_BLOCKED,
            "PROHIBITED_CONTENT",
            False,
        ),
        (_answer(None, "SAFETY"), Category.RESPONSE_BLOCKED, "SAFETY", False),
        (_answer("partial", "RECITATION"), Category.RESPONSE_BLOCKED, "RECITATION", False),
        (_answer(None, "BLOCKLIST"), Category.RESPONSE_BLOCKED, "BLOCKLIST", False),
        (
            _answer(None, "PROHIBITED_CONTENT"),
            Category.RESPONSE_BLOCKED,
            "PROHIBITED_CONTENT",
            False,
        ),
        (_answer(None, "SPII"), Category.RESPONSE_BLOCKED, "SPII", False),
        (_answer(None, "IMAGE_SAFETY"), Category.RESPONSE_BLOCKED, "IMAGE_SAFETY", False),
        (
            _answer(None, "MALFORMED_FUNCTION_CALL"),
            Category.MALFORMED_FUNCTION_CALL,
            "MALFORMED_FUNCTION_CALL",
            True,
        ),
        (
            {"candidates": [], "usageMetadata": {"promptTokenCount": 3}},
            Category.EMPTY_RESPONSE,
            None,
            True,
        ),
        ({"usageMetadata": {"promptTokenCount": 3}}, Category.EMPTY_RESPONSE, None, True),
        (_answer("", "STOP"), Category.EMPTY_RESPONSE, "STOP", True),
        (_answer("   ", "STOP"), Category.EMPTY_RESPONSE, "STOP", True),
        (THINKING_ATE_IT, Category.THINKING_EXHAUSTED, "MAX_TOKENS", False),
        (_answer(None, "OTHER"), Category.GENERATION_STOPPED, "OTHER", True),
    ],
)
def test_each_quiet_failure(
    response: dict[str, Any], category: Category, reason: str | None, retryable: bool
) -> None:
    for form in (response, json.dumps(response), json.dumps(response).encode()):
        d = diagnose_response(form)
        assert d is not None
        assert (d.category, d.reason, d.retryable, d.http_status) == (
            category,
            reason,
            retryable,
            200,
        )
        assert diagnose(form) == d
        assert d.is_problem


@pytest.mark.parametrize(
    "response",
    [
        _answer("Hello!"),
        _answer("A long answer cut short", "MAX_TOKENS", candidatesTokenCount=10),
        {
            "candidates": [
                {
                    "content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    "finishReason": "STOP",
                }
            ]
        },
        # A second candidate blocked, the first fine: the answer is usable.
        {
            "candidates": [
                {"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"},
                {"finishReason": "SAFETY"},
            ]
        },
    ],
)
def test_a_usable_response_is_no_problem(response: dict[str, Any]) -> None:
    assert diagnose_response(response) is None
    d = diagnose(response)
    assert d is HEALTHY
    assert d.category is Category.NO_PROBLEM
    assert not d.is_problem
    assert "No problem" in d.explain("en")


def test_thinking_text_alone_is_not_an_answer() -> None:
    response = {
        "candidates": [
            {
                "content": {"parts": [{"text": "let me think...", "thought": True}]},
                "finishReason": "MAX_TOKENS",
            }
        ]
    }
    d = diagnose_response(response)
    assert d is not None
    assert d.category is Category.THINKING_EXHAUSTED


def test_the_thinking_explanation_names_the_budget_and_the_fix() -> None:
    d = diagnose_response(THINKING_ATE_IT)
    assert d is not None
    assert "thoughtsTokenCount 1021" in d.message
    en, zh = d.explain("en"), d.explain("zh")
    assert "1,021 thinking tokens" in en
    assert "max_output_tokens" in en
    assert "thinking_budget" in en
    assert "思考" in zh
    assert "max_output_tokens" in zh


def test_blocked_prompt_names_what_was_flagged() -> None:
    d = diagnose_response(BLOCKED_PROMPT)
    assert d is not None
    assert "DANGEROUS_CONTENT" in d.message
    assert "Rephrase" in d.explain("en")
    assert "does not retry" in d.explain("en")


def test_stream_chunks_are_read_as_one_response() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Hel"}]}, "index": 0}]},
        {
            "candidates": [
                {"content": {"parts": [{"text": "lo"}]}, "index": 0, "finishReason": "STOP"}
            ]
        },
    ]
    assert diagnose_response(chunks) is None
    blocked = [*chunks[:1], {"candidates": [{"index": 0, "finishReason": "SAFETY"}]}]
    d = diagnose_response(blocked)
    assert d is not None
    assert d.category is Category.RESPONSE_BLOCKED


def test_the_sdk_response_object() -> None:
    ok = types.GenerateContentResponse.model_validate(_answer("fine"))
    assert diagnose_response(ok) is None
    assert diagnose(ok) is HEALTHY
    thinking = types.GenerateContentResponse.model_validate(THINKING_ATE_IT)
    d = diagnose(thinking)
    assert d.category is Category.THINKING_EXHAUSTED
    blocked = types.GenerateContentResponse.model_validate(BLOCKED_PROMPT)
    assert diagnose(blocked).category is Category.PROMPT_BLOCKED


def test_errors_and_other_things_are_not_responses() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    assert not looks_like_response(error)
    assert diagnose_response(error) is None
    assert diagnose(error).category is Category.OVERLOADED
    for thing in ("hello", b"\xff\xfe", 42, None, [1, 2], {"candidates": "nonsense"}):
        diagnose_response(thing)  # never raises
        diagnose(thing)
