"""The one token estimate shared by the validator, the limiter and the emulator."""

from __future__ import annotations

import pytest
from google.genai import types

from gemini_guard.tokens import MEDIA_PART_TOKENS, estimate_text_tokens, estimate_tokens


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2)])
def test_text_is_about_four_characters_a_token(text: str, tokens: int) -> None:
    assert estimate_text_tokens(text) == tokens


def test_every_contents_shape_gives_the_same_count() -> None:
    text = "x" * 40  # 10 tokens
    shapes = [
        text,
        [text],
        {"role": "user", "parts": [{"text": text}]},
        [{"role": "user", "parts": [{"text": text}]}],
        types.Content(role="user", parts=[types.Part(text=text)]),
        [types.Part(text=text)],
    ]
    assert [estimate_tokens(s) for s in shapes] == [10] * len(shapes)


def test_media_parts_count_a_fixed_amount() -> None:
    image = types.Part.from_bytes(data=b"\x89PNG....", mime_type="image/png")
    assert estimate_tokens([image, "abcd"]) == MEDIA_PART_TOKENS + 1
    assert estimate_tokens(
        {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}
    ) == (MEDIA_PART_TOKENS)


def test_none_is_zero() -> None:
    assert estimate_tokens(None) == 0
