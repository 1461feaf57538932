"""Reading a request body as JSON the way the API's front end does: a size cap, a
nesting limit, no NaN or Infinity, no lone surrogates, and each known field of the
right JSON type. Each rejection is the 400 the real API sends, never a 500.

Wording: "Invalid JSON payload received. Unexpected token." and "Invalid value at
'<path>' (<type>), <value>" are the API's; the size limit's message is the one Google's
front end gives ("Request payload size exceeds the limit: 20971520 bytes."). For a
body nested too deep and for a lone surrogate we have no captured reply and use the
API's "Invalid JSON payload received." prefix with our own detail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.error_bodies import ErrorReply

__all__ = [
    "MAX_DEPTH",
    "MAX_REQUEST_BYTES",
    "check_field_types",
    "parse_request_json",
    "too_large",
]

# The Gemini API's documented cap on a whole request with inline data: 20 MB.
MAX_REQUEST_BYTES = 20 * 1024 * 1024
# Protobuf's JSON parser refuses messages nested deeper than 100 levels.
MAX_DEPTH = 100
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1beta."


class _BadJson(Exception):
    pass


def _no_constants(name: str) -> Any:
    raise _BadJson(name)


def too_large() -> ErrorReply:
    """The API states its limit, not the size it got."""
    return error_bodies.invalid_argument(
        f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.",
        reason="request_too_large",
    )


def _depth_and_surrogate(value: Any) -> str | None:
    """A problem with the parsed value's shape, without recursion (a deep body is data)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"Message nesting exceeds the maximum depth of {MAX_DEPTH}."
        if isinstance(item, str):
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return "Invalid UTF-8: a lone surrogate escape in a string."
        elif isinstance(item, Mapping):
            for key, child in item.items():
                stack.append((key, depth))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None


def parse_request_json(raw: bytes) -> Any | ErrorReply:
    """The parsed body, or the 400 the API answers to it. An empty body is `{}`."""
    if len(raw) > MAX_REQUEST_BYTES:
        return too_large()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except _BadJson as exc:
        return error_bodies.invalid_json(f"Unexpected token.\n{exc.args[0]}\n^")
    except RecursionError:
        return error_bodies.invalid_json(
            f"Message nesting exceeds the maximum depth of {MAX_DEPTH}."
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        text = raw.decode("utf-8", "replace")
        pos = getattr(exc, "pos", 0)
        line_start = text.rfind("\n", 0, pos) + 1
        line_end = text.find("\n", pos)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        return error_bodies.invalid_json(f"Unexpected token.\n{line}\n{' ' * (pos - line_start)}^")
    problem = _depth_and_surrogate(value)
    if problem is not None:
        return error_bodies.invalid_json(problem)
    return value


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping | list):
        return json.dumps(value)[:80]
    return str(value)


def _wrong(path: str, type_name: str, value: Any) -> ErrorReply:
    return error_bodies.invalid_value(
        f"Invalid value at '{path}' ({type_name}), {_shown(value)}", field_path=path
    )


def _message(path: str, name: str, value: Any) -> ErrorReply | None:
    if value is None or isinstance(value, Mapping):
        return None
    return _wrong(path, _TYPES + name, value)


def _check_content(content: Any, path: str) -> ErrorReply | None:
    problem = _message(path, "Content", content)
    if problem is not None or not isinstance(content, Mapping):
        return problem
    role = _get(content, "role")
    if role is not None and not isinstance(role, str):
        return _wrong(f"{path}.role", "TYPE_STRING", role)
    parts = _get(content, "parts")
    if parts is None:
        return None
    if not isinstance(parts, list):
        return _message(f"{path}.parts", "Part", parts) or _wrong(
            f"{path}.parts", _TYPES + "Part", parts
        )
    for j, part in enumerate(parts):
        where = f"{path}.parts[{j}]"
        problem = _message(where, "Part", part)
        if problem is not None:
            return problem
        text = _get(part, "text")
        if text is not None and not isinstance(text, str):
            return _wrong(f"{where}.text", "TYPE_STRING", text)
    return None


def check_field_types(body: Mapping[str, Any]) -> ErrorReply | None:
    """The API's "Invalid value at ..." 400 for a known field of the wrong JSON type."""
    contents = _get(body, "contents")
    if contents is not None:
        items = contents if isinstance(contents, list) else [contents]
        for i, content in enumerate(items):
            where = f"contents[{i}]" if isinstance(contents, list) else "contents"
            problem = _check_content(content, where)
            if problem is not None:
                return problem
    system = _get(body, "systemInstruction")
    if system is not None:
        problem = _check_content(system, "system_instruction")
        if problem is not None:
            return problem
    tools = _get(body, "tools")
    if tools is not None:
        for i, tool in enumerate(tools if isinstance(tools, list) else [tools]):
            problem = _message(f"tools[{i}]", "Tool", tool)
            if problem is not None:
                return problem
    config = _get(body, "generationConfig")
    problem = _message("generation_config", "GenerationConfig", config)
    if problem is not None or not isinstance(config, Mapping):
        return problem
    problem = _message(
        "generation_config.thinking_config", "ThinkingConfig", _get(config, "thinkingConfig")
    )
    if problem is not None:
        return problem
    stops = _get(config, "stopSequences")
    for i, stop in enumerate(stops if isinstance(stops, list) else [stops]):
        if stop is not None and not isinstance(stop, str):
            return _wrong(f"generation_config.stop_sequences[{i}]", "TYPE_STRING", stop)
    mime = _get(config, "responseMimeType")
    if mime is not None and not isinstance(mime, str):
        return _wrong("generation_config.response_mime_type", "TYPE_STRING", mime)
    return None
