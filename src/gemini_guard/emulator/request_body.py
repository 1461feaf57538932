"""Reading and checking request bodies the way the Gemini API does.

The API accepts field names in camelCase and in snake_case (the official SDKs send
some nested keys, e.g. `thinking_budget`, in snake_case) and rejects unknown names
with "Invalid JSON payload received. Unknown name ...". `normalize_generate_request`
returns the request with camelCase keys at every level it knows, or an `ErrorReply`.
Nested free-form values (schemas, tool declarations, function arguments) are passed
through untouched: the real API is stricter there, the emulator is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.error_bodies import ErrorReply

__all__ = [
    "camel",
    "field",
    "normalize_count_tokens_request",
    "normalize_generate_request",
    "snake",
]

_UPPER = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _UPPER.sub("_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def field(obj: Mapping[str, Any] | None, name: str, default: Any = None) -> Any:
    """`obj[name]` whether the request spelled it in camelCase or snake_case."""
    if not obj:
        return default
    if name in obj:
        return obj[name]
    return obj.get(snake(name), default)


_GENERATE_FIELDS = frozenset(
    {
        "model",
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
        "serviceTier",
        "store",
    }
)
_GENERATION_CONFIG_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
        "imageConfig",
        "audioTimestamp",
    }
)
_CONTENT_FIELDS = frozenset({"role", "parts"})
_PART_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
        "thought",
        "thoughtSignature",
        "videoMetadata",
        "mediaResolution",
        "partMetadata",
    }
)
_COUNT_TOKENS_FIELDS = frozenset({"contents", "generateContentRequest"})

# (field, TYPE_ name for type errors, low, high, integer?)
_RANGES: dict[str, tuple[str, float | None, float | None, bool]] = {
    "temperature": ("TYPE_FLOAT", 0.0, 2.0, False),
    "topP": ("TYPE_FLOAT", 0.0, 1.0, False),
    "topK": ("TYPE_INT32", 1, None, True),
    "candidateCount": ("TYPE_INT32", 1, 8, True),
    "maxOutputTokens": ("TYPE_INT32", 1, None, True),
    "presencePenalty": ("TYPE_FLOAT", None, None, False),
    "frequencyPenalty": ("TYPE_FLOAT", None, None, False),
    "seed": ("TYPE_INT32", None, None, True),
}


class _Unknown(Exception):
    def __init__(self, names: list[tuple[str, str]]) -> None:
        self.names = names


def _normalize(obj: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """`obj` with camelCase keys; collects unknown names (with their snake_case path)."""
    if not isinstance(obj, Mapping):
        raise _Unknown([])
    out: dict[str, Any] = {}
    unknown: list[tuple[str, str]] = []
    for key, value in obj.items():
        name = key if key in allowed else camel(key)
        if name not in allowed:
            unknown.append((key, where))
            continue
        out[name] = value
    if unknown:
        raise _Unknown(unknown)
    return out


def _normalize_contents(contents: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(contents, list):
        contents = [contents]
    out = []
    unknown: list[tuple[str, str]] = []
    for i, content in enumerate(contents):
        path = f"{where}[{i}]"
        try:
            normal = _normalize(content, _CONTENT_FIELDS, path)
        except _Unknown as exc:
            unknown.extend(exc.names)
            continue
        parts = normal.get("parts") or []
        if not isinstance(parts, list):
            parts = [parts]
        clean_parts = []
        for j, part in enumerate(parts):
            try:
                clean_parts.append(_normalize(part, _PART_FIELDS, f"{path}.parts[{j}]"))
            except _Unknown as exc:
                unknown.extend(exc.names)
        normal["parts"] = clean_parts
        out.append(normal)
    if unknown:
        raise _Unknown(unknown)
    return out


def normalize_generate_request(
    body: Any, *, output_token_limit: int, model: str
) -> dict[str, Any] | ErrorReply:
    """The request with camelCase keys, or the 400 the API would answer."""
    if not isinstance(body, Mapping):
        return error_bodies.invalid_json(
            "Root element must be a message." if body is not None else "Unexpected end of input."
        )
    try:
        request = _normalize(body, _GENERATE_FIELDS, "")
        unknown: list[tuple[str, str]] = []
        if "generationConfig" in request:
            try:
                request["generationConfig"] = _normalize(
                    request["generationConfig"] or {},
                    _GENERATION_CONFIG_FIELDS,
                    "generation_config",
                )
            except _Unknown as exc:
                unknown.extend(exc.names)
        if "contents" in request:
            try:
                request["contents"] = _normalize_contents(request["contents"], "contents")
            except _Unknown as exc:
                unknown.extend(exc.names)
        if "systemInstruction" in request:
            try:
                request["systemInstruction"] = _normalize_contents(
                    request["systemInstruction"], "system_instruction"
                )[0]
            except _Unknown as exc:
                unknown.extend(exc.names)
        if unknown:
            raise _Unknown(unknown)
    except _Unknown as exc:
        if not exc.names:
            return error_bodies.invalid_json("Expected an object.")
        return error_bodies.unknown_field(exc.names)
    if not request.get("contents"):
        return error_bodies.invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified\n"
        )
    for i, content in enumerate(request["contents"]):
        if not content.get("parts"):
            return error_bodies.invalid_argument(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
        if content.get("role") not in (None, "", "user", "model", "function", "tool"):
            return error_bodies.invalid_argument("Please use a valid role: user, model.")
        for j, part in enumerate(content["parts"]):
            if not any(v not in (None, "") for v in part.values()):
                # An empty text part has no data at all, as far as the proto is concerned.
                return error_bodies.invalid_argument(
                    f"* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof "
                    "field 'data' must have one initialized field\n"
                )
    problem = _check_safety_settings(request.get("safetySettings"))
    if problem is not None:
        return problem
    problem = _check_generation_config(
        request.get("generationConfig") or {}, output_token_limit=output_token_limit, model=model
    )
    if problem is not None:
        return problem
    return request


# The API's enums (google.ai.generativelanguage HarmCategory / HarmBlockThreshold).
_HARM_CATEGORIES = frozenset(
    {
        "HARM_CATEGORY_UNSPECIFIED",
        "HARM_CATEGORY_DEROGATORY",
        "HARM_CATEGORY_TOXICITY",
        "HARM_CATEGORY_VIOLENCE",
        "HARM_CATEGORY_SEXUAL",
        "HARM_CATEGORY_MEDICAL",
        "HARM_CATEGORY_DANGEROUS",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    }
)
_HARM_THRESHOLDS = frozenset(
    {
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
        "BLOCK_LOW_AND_ABOVE",
        "BLOCK_MEDIUM_AND_ABOVE",
        "BLOCK_ONLY_HIGH",
        "BLOCK_NONE",
        "OFF",
    }
)


def _check_safety_settings(settings: Any) -> ErrorReply | None:
    if not isinstance(settings, list):
        return None
    for i, setting in enumerate(settings):
        if not isinstance(setting, Mapping):
            continue
        for name, enum, allowed in (
            ("category", "HarmCategory", _HARM_CATEGORIES),
            ("threshold", "HarmBlockThreshold", _HARM_THRESHOLDS),
        ):
            value = setting.get(name)
            if value is not None and value not in allowed:
                path = f"safety_settings[{i}].{name}"
                return error_bodies.invalid_value(
                    f"Invalid value at '{path}' "
                    f"(type.googleapis.com/google.ai.generativelanguage.v1beta.{enum}), "
                    f"{_json_repr(value)}",
                    field_path=path,
                )
    return None


def normalize_count_tokens_request(body: Any) -> dict[str, Any] | ErrorReply:
    """A countTokens body: `contents`, or a whole `generateContentRequest`."""
    if not isinstance(body, Mapping):
        return error_bodies.invalid_json("Root element must be a message.")
    try:
        request = _normalize(body, _COUNT_TOKENS_FIELDS, "")
        if "contents" in request:
            request["contents"] = _normalize_contents(request["contents"], "contents")
    except _Unknown as exc:
        return error_bodies.unknown_field(exc.names)
    return request


def _check_generation_config(
    config: Mapping[str, Any], *, output_token_limit: int, model: str
) -> ErrorReply | None:
    for name, (type_name, low, high, integer) in _RANGES.items():
        if name not in config or config[name] is None:
            continue
        value = config[name]
        path = f"generation_config.{snake(name)}"
        # Proto JSON takes a whole-number float for an integer field (the SDK sends
        # top_k as 1.0); only a fractional value is a type error.
        ok_type = isinstance(value, int) or (
            isinstance(value, float) and (value.is_integer() or not integer)
        )
        if isinstance(value, bool) or not ok_type:
            return error_bodies.invalid_value(
                f"Invalid value at '{path}' ({type_name}), {_json_repr(value)}", field_path=path
            )
        if name == "maxOutputTokens":
            high = output_token_limit
        if (low is not None and value < low) or (high is not None and value > high):
            return error_bodies.invalid_argument(
                f"* GenerateContentRequest.{path}: must be between {_num(low)} and {_num(high)}\n"
            )
    thinking = field(config, "thinkingConfig")
    if isinstance(thinking, Mapping):
        budget = field(thinking, "thinkingBudget")
        if budget == 0 and model.startswith("gemini-2.5-pro"):
            return error_bodies.invalid_argument(
                "Budget 0 is invalid. This model only works in thinking mode."
            )
    return None


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return f"{value:g}"


def _json_repr(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)
