"""The bodies of quiet failures: 200 answers that carry no usable output.

Shapes follow what the API returns: a blocked prompt has `promptFeedback` and no
`candidates`; a blocked candidate has a `finishReason` and `safetyRatings` and no
content; MAX_TOKENS spent on thinking has a candidate without parts and a
`thoughtsTokenCount` equal to the output budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gemini_guard.emulator.request_body import field

__all__ = ["quiet_response"]

_DEFAULT_THINKING = 8192  # thoughts spent when the request sets no maxOutputTokens


def _ratings(blocked: str) -> list[dict[str, Any]]:
    ratings = []
    for category in (
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    ):
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if category == blocked:
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        ratings.append(rating)
    return ratings


def quiet_response(
    kind: str,
    *,
    model: str,
    response_id: str,
    prompt_tokens: int,
    config: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The whole GenerateContentResponse of quiet failure `kind`."""
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "totalTokenCount": prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    body: dict[str, Any] = {"modelVersion": model, "responseId": response_id}
    if kind == "blocked_prompt":
        body["promptFeedback"] = {
            "blockReason": "SAFETY",
            "safetyRatings": _ratings("HARM_CATEGORY_DANGEROUS_CONTENT"),
        }
    elif kind == "safety_block":
        body["candidates"] = [
            {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": _ratings("HARM_CATEGORY_HARASSMENT"),
            }
        ]
    elif kind == "empty_candidate":
        body["candidates"] = [
            {"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}
        ]
    elif kind == "thinking_exhausted":
        budget = field(config or {}, "maxOutputTokens")
        thoughts = (
            int(budget) if isinstance(budget, int | float) and budget > 0 else _DEFAULT_THINKING
        )
        body["candidates"] = [
            {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}
        ]
        usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = prompt_tokens + thoughts
    elif kind == "malformed_function_call":
        body["candidates"] = [
            {
                "finishReason": "MALFORMED_FUNCTION_CALL",
                "finishMessage": "Malformed function call: the arguments are not valid JSON.",
                "index": 0,
            }
        ]
    else:
        raise ValueError(f"not a quiet failure: {kind}")
    body["usageMetadata"] = usage
    return body
