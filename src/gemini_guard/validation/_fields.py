"""Field names the API accepts, derived from the google-genai SDK's own pydantic types.

Deriving them keeps the validator in step with the installed SDK: a field Google adds
appears here with the next SDK release, without a hand-kept list going stale. Each
pydantic field has a snake_case name and a camelCase alias; both are accepted on the
wire. Nested objects (safetySettings[i], thinkingConfig) are checked with their own
types.
"""

from __future__ import annotations

import difflib
import functools
import re
import types as pytypes
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import types as genai_types

__all__ = [
    "FOREIGN_NAMES",
    "REST_REQUEST_FIELDS",
    "FieldInfo",
    "Schema",
    "closest",
    "normalize",
    "schema_of",
]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    snake: str
    camel: str
    nested: type[pydantic.BaseModel] | None  # an object type checked recursively
    nested_is_list: bool  # the field is a list of `nested`
    unsupported_note: str | None  # the SDK documents it as unsupported by the Gemini API


@dataclass(frozen=True, slots=True)
class Schema:
    """The fields of one object type, by every accepted spelling."""

    type_name: str
    by_name: dict[str, FieldInfo]

    @property
    def camel_names(self) -> list[str]:
        return sorted({f.camel for f in self.by_name.values()})

    def lookup(self, key: str) -> FieldInfo | None:
        return self.by_name.get(key)


_UNSUPPORTED = re.compile(r"not supported in Gemini API", re.IGNORECASE)


def _single_model(annotation: Any) -> tuple[type[pydantic.BaseModel] | None, bool]:
    """(model, is_list) when `annotation` is Optional[Model] or Optional[list[Model]]."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is pytypes.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _single_model(args[0]) if len(args) == 1 else (None, False)
    if origin is typing.Annotated:
        return _single_model(typing.get_args(annotation)[0])
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        model, _ = _single_model(item)
        return model, model is not None
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation, False
    return None, False


@functools.cache
def schema_of(model: type[pydantic.BaseModel]) -> Schema:
    """Every accepted spelling of `model`'s fields."""
    by_name: dict[str, FieldInfo] = {}
    for snake, field in model.model_fields.items():
        nested, is_list = _single_model(field.annotation)
        camel = field.alias or snake
        note = None
        if field.description and _UNSUPPORTED.search(field.description):
            note = (
                "the SDK documents this field as not supported by the Gemini API (Vertex AI only)"
            )
        info = FieldInfo(snake, camel, nested, is_list, note)
        by_name[snake] = info
        by_name[camel] = info
    return Schema(model.__name__, by_name)


def _rest_request_fields() -> Schema:
    """The top level of a REST `generateContent` body, from the API reference.

    The SDK has no type for the REST body itself (it builds it from
    GenerateContentConfig), so these seven names are listed here; the objects they
    hold are still derived from SDK types.
    """
    fields = [
        FieldInfo("contents", "contents", genai_types.Content, True, None),
        FieldInfo("system_instruction", "systemInstruction", genai_types.Content, False, None),
        FieldInfo(
            "generation_config", "generationConfig", genai_types.GenerationConfig, False, None
        ),
        FieldInfo("safety_settings", "safetySettings", genai_types.SafetySetting, True, None),
        FieldInfo("tools", "tools", genai_types.Tool, True, None),
        FieldInfo("tool_config", "toolConfig", genai_types.ToolConfig, False, None),
        FieldInfo("cached_content", "cachedContent", None, False, None),
        # The model is part of the URL, but gateways and batch files carry it in the body.
        FieldInfo("model", "model", None, False, None),
    ]
    return Schema("GenerateContentRequest", {n: f for f in fields for n in (f.snake, f.camel)})


REST_REQUEST_FIELDS = _rest_request_fields()

# Names other APIs and older SDKs use for a Gemini field, by normalized spelling
# (lowercase, no underscores). They are too far from the Gemini names for difflib.
FOREIGN_NAMES: dict[str, str] = {
    "maxtokens": "maxOutputTokens",  # OpenAI, Anthropic
    "maxcompletiontokens": "maxOutputTokens",  # OpenAI
    "maxnewtokens": "maxOutputTokens",  # Hugging Face
    "maxlength": "maxOutputTokens",
    "maxoutputtoken": "maxOutputTokens",
    "n": "candidateCount",  # OpenAI
    "numcandidates": "candidateCount",
    "stop": "stopSequences",  # OpenAI
    "stopsequence": "stopSequences",
    "system": "systemInstruction",  # Anthropic
    "systemprompt": "systemInstruction",
    "systemmessage": "systemInstruction",
    "responseformat": "responseMimeType",  # OpenAI (with responseSchema for a schema)
    "toplogprobs": "logprobs",  # OpenAI
    "functions": "tools",  # OpenAI (legacy)
    "safety": "safetySettings",
    "thinkingbudget": "thinkingConfig",  # it lives inside thinkingConfig
}


def normalize(name: str) -> str:
    """`name` lowercased without underscores or dashes: maxOutputTokens == max_output_tokens."""
    return re.sub(r"[_\-]", "", name).lower()


def closest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate most like `word`, ignoring case and underscores, or None."""
    by_normal: dict[str, str] = {}
    for candidate in candidates:
        by_normal.setdefault(normalize(candidate), candidate)
    match = difflib.get_close_matches(normalize(word), list(by_normal), n=1, cutoff=cutoff)
    return by_normal[match[0]] if match else None
