"""Model names Google has retired, and what to use instead.

A retired name answers 404 ("models/gemini-1.0-pro is not found for API version v1,
or is not supported for generateContent"), which reads like a typo. Knowing the name
was once valid turns that into a migration note. Patterns are shell-style (fnmatch)
and matched without the "models/" prefix. Keep this table short and factual: add a
row when Google shuts a family down.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

__all__ = ["RETIRED_MODELS", "RetiredModel", "retired_model"]


@dataclass(frozen=True, slots=True)
class RetiredModel:
    pattern: str
    successor: str
    note: str
    note_zh: str


_V1 = ("the Gemini 1.0 family", "Gemini 1.0 系列")
_V15 = ("the Gemini 1.5 family", "Gemini 1.5 系列")
_EXP = ("an experimental 2.0 preview", "2.0 实验预览版")
_PALM = ("the PaLM 2 API", "PaLM 2 API")

RETIRED_MODELS: tuple[RetiredModel, ...] = (
    RetiredModel("gemini-pro", "gemini-2.5-flash", "the Gemini 1.0 alias", "Gemini 1.0 的别名"),
    RetiredModel("gemini-pro-vision", "gemini-2.5-flash", *_V1),
    RetiredModel("gemini-1.0-*", "gemini-2.5-flash", *_V1),
    RetiredModel("gemini-1.5-pro*", "gemini-2.5-pro", *_V15),
    RetiredModel("gemini-1.5-flash-8b*", "gemini-2.5-flash-lite", *_V15),
    RetiredModel("gemini-1.5-flash*", "gemini-2.5-flash", *_V15),
    RetiredModel("gemini-2.0-flash-exp*", "gemini-2.5-flash", *_EXP),
    RetiredModel("gemini-2.0-flash-thinking-exp*", "gemini-2.5-flash", *_EXP),
    RetiredModel("text-bison*", "gemini-2.5-flash", *_PALM),
    RetiredModel("chat-bison*", "gemini-2.5-flash", *_PALM),
)


def retired_model(name: str) -> RetiredModel | None:
    """The retirement row matching `name` ("models/" prefix allowed), or None."""
    bare = name.removeprefix("models/").lower()
    for row in RETIRED_MODELS:
        if fnmatch.fnmatchcase(bare, row.pattern):
            return row
    return None
