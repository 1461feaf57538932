"""The HTTP-level path's cheap readings agree with the full ones they stand in front of.

`GuardedTransport` checks a generateContent answer with a plain reading before asking
`diagnose_response`, estimates a request's tokens without walking every shape the
general estimate accepts, and reads each route once per path. None of them may ever
give another answer than the full reading.
"""

from __future__ import annotations

from typing import Any

import pytest

from gemini_guard.call import http
from gemini_guard.call.http import Route, estimated_input_tokens, route_of
from gemini_guard.call.transport import _plainly_usable
from gemini_guard.diagnosis import diagnose_response
from gemini_guard.tokens import estimate_tokens


def _answer(*parts: dict[str, Any], finish: str = "STOP", **extra: Any) -> dict[str, Any]:
    candidate = {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish}
    return {"candidates": [candidate], **extra}


ANSWERS: list[tuple[str, dict[str, Any], bool]] = [
    # (what, answer, plainly usable)
    ("text", _answer({"text": "Paris."}), True),
    ("truncated text", _answer({"text": "Par"}, finish="MAX_TOKENS"), True),
    ("thought, then text", _answer({"text": "hm", "thought": True}, {"text": "Yes."}), True),
    ("only a thought", _answer({"text": "hm", "thought": True}), False),
    ("blank text", _answer({"text": "  \n"}), False),
    ("no parts", _answer(), False),
    ("safety stop", _answer({"text": "Some"}, finish="SAFETY"), False),
    ("thinking used the budget", _answer(finish="MAX_TOKENS"), False),
    (
        "prompt blocked",
        _answer({"text": "x"}, promptFeedback={"blockReason": "SAFETY"}),
        False,
    ),
    (
        "prompt feedback without a block",
        _answer({"text": "x"}, promptFeedback={"safetyRatings": []}),
        True,
    ),
    ("snake_case block", _answer({"text": "x"}, prompt_feedback={"block_reason": "OTHER"}), False),
    ("no candidates", {"usageMetadata": {"promptTokenCount": 3}}, False),
    ("a function call", _answer({"functionCall": {"name": "f", "args": {}}}), False),
    (
        "second candidate usable",
        {
            "candidates": [
                {"content": {"parts": []}, "finishReason": "SAFETY"},
                {"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"},
            ]
        },
        True,
    ),
    ("odd shapes", {"candidates": ["x", {"content": "y", "finishReason": "STOP"}]}, False),
]


@pytest.mark.parametrize(("what", "answer", "plain"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_the_plain_reading_is_never_a_failure_the_full_one_finds(
    what: str, answer: dict[str, Any], plain: bool
) -> None:
    assert _plainly_usable(answer) is plain
    if plain:
        assert diagnose_response(answer) is None


GENERATE = Route("generate", "gemini-2.5-flash", "gemini-2.5-flash")
BODIES: list[Any] = [
    {"contents": [{"role": "user", "parts": [{"text": "Name a river in France."}]}]},
    {"contents": [{"parts": [{"text": "第一"}, {"text": "second line\n  indented"}]}]},
    {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Answer in one word."}]},
    },
    {"contents": [{"parts": [{"text": "see"}, {"inlineData": {"mimeType": "image/png"}}]}]},
    {"contents": [{"parts": [{"text": "a", "thought": True}]}]},
    {"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}]},
    {"contents": "a bare string"},
    {"contents": [{"role": "user"}]},
    {"contents": ["text", {"text": "a part without content"}]},
    {"systemInstruction": "be brief"},
    {},
]


@pytest.mark.parametrize("body", BODIES)
def test_the_estimate_is_the_general_one(body: Any) -> None:
    expected = estimate_tokens(body.get("contents")) + estimate_tokens(
        body.get("systemInstruction")
    )
    assert estimated_input_tokens(GENERATE, body) == expected


def test_an_embedding_batch_is_estimated_by_its_items() -> None:
    route = Route("embed", "gemini-embedding-001", "gemini-embedding-001")
    body = {"requests": [{"content": {"parts": [{"text": t}]}} for t in ("one", "two words")]}
    assert estimated_input_tokens(route, body) == estimate_tokens(
        [{"parts": [{"text": "one"}]}]
    ) + estimate_tokens([{"parts": [{"text": "two words"}]}])
    assert estimated_input_tokens(route, "not a dict") == 0


def test_a_route_read_once_is_the_same_route_and_the_memory_stays_bounded() -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    first = route_of("POST", path, None)
    assert route_of("POST", path, None) is first
    assert first == Route("generate", "gemini-2.5-flash", "gemini-2.5-flash")
    vertex = "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:countTokens"
    assert route_of("POST", vertex, None) == Route(
        "count",
        "gemini-2.5-pro",
        "gemini-2.5-pro",  # in the request's own location
    )
    assert route_of("GET", path, None).kind == "other"  # the method counts too
    for i in range(3 * http._MOST_ROUTES):
        assert route_of("GET", f"/v1beta/files/f{i}", None).label == "files"
    assert len(http._ROUTES) <= http._MOST_ROUTES
    # The OpenAI-compatible surface names its model in the body: never kept by path.
    chat = "/v1beta/openai/chat/completions"
    assert route_of("POST", chat, {"model": "gemini-2.5-pro"}).model == "gemini-2.5-pro"
    assert route_of("POST", chat, {"model": "gemini-2.5-flash"}).model == "gemini-2.5-flash"
