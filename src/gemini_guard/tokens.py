"""A cheap, offline estimate of how many tokens a request's contents use.

The Gemini API counts tokens with the model's tokenizer (`:countTokens`), which costs a
request. For pacing, preflight checks and the emulator, an estimate is enough: Google
documents roughly 4 characters per token for English text, and a fixed 258 tokens per
image (or other inline/file media part). One rule, used everywhere, so that the
emulator's accounting and the Guard's estimate agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "MEDIA_PART_TOKENS", "estimate_text_tokens", "estimate_tokens"]

CHARS_PER_TOKEN = 4
MEDIA_PART_TOKENS = 258

_MEDIA_KEYS = ("inline_data", "inlineData", "file_data", "fileData")
_STRUCTURED_KEYS = (
    "function_call",
    "functionCall",
    "function_response",
    "functionResponse",
    "executable_code",
    "executableCode",
    "code_execution_result",
    "codeExecutionResult",
)


def estimate_text_tokens(text: str) -> int:
    """Tokens in `text` at about 4 characters each (0 for the empty string)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_tokens(contents: Any) -> int:
    """Estimated input tokens of `contents` in any shape `generate_content` accepts.

    A string, a list of strings, SDK `Content`/`Part` objects, or REST-style dicts
    (`{"role": ..., "parts": [{"text": ...}]}`), in camelCase or snake_case. Text is
    counted at ~4 characters per token, each media part at 258 tokens, function calls
    and responses by the length of their JSON.
    """
    return sum(_part_tokens(part) for part in _parts(contents))


def _parts(contents: Any) -> Iterable[Any]:
    """Every part of `contents`, flattened (contents -> content -> parts)."""
    if contents is None:
        return
    if isinstance(contents, str | bytes):
        yield contents
        return
    if hasattr(contents, "model_dump") and not isinstance(contents, Mapping):
        contents = contents.model_dump(exclude_none=True)
    if isinstance(contents, Mapping):
        if "parts" in contents:
            yield from _parts(contents["parts"])
        else:
            yield contents
        return
    if isinstance(contents, Iterable):
        for item in contents:
            yield from _parts(item)
        return
    yield str(contents)


def _part_tokens(part: Any) -> int:
    if isinstance(part, str):
        return estimate_text_tokens(part)
    if isinstance(part, bytes):
        return MEDIA_PART_TOKENS
    if not isinstance(part, Mapping):
        return estimate_text_tokens(str(part))
    tokens = 0
    text = part.get("text")
    if isinstance(text, str):
        tokens += estimate_text_tokens(text)
    if any(part.get(key) is not None for key in _MEDIA_KEYS):
        tokens += MEDIA_PART_TOKENS
    for key in _STRUCTURED_KEYS:
        value = part.get(key)
        if value is not None:
            tokens += estimate_text_tokens(json.dumps(value, default=str, sort_keys=True))
    return tokens
