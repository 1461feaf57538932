"""Tokens: offline estimates by script (`estimate`), and the counters a paced Guard
reserves with (`counter`: the estimate, the API's countTokens, or your function)."""

from gemini_guard.tokens.estimate import (
    CHARS_PER_TOKEN,
    MAX_TOKENS_PER_CHAR,
    MEDIA_PART_TOKENS,
    TextCounts,
    TextTally,
    count_text,
    estimate_text_tokens,
    estimate_tokens,
    truncate_to_tokens,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "MAX_TOKENS_PER_CHAR",
    "MEDIA_PART_TOKENS",
    "TextCounts",
    "TextTally",
    "count_text",
    "estimate_text_tokens",
    "estimate_tokens",
    "truncate_to_tokens",
]
