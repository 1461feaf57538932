"""Responses to bytes and back, as the SDK's own types.

A response is stored as the SDK's JSON (`model_dump(mode="json", exclude_none=True)`,
without the HTTP headers the SDK keeps in `sdk_http_response`), and a hit returns a
fresh `GenerateContentResponse`, so callers get the type they would have got from
the API and may change it without touching the cache.

Rebuilding with `model_validate` runs the SDK's per-object validators, about 90 µs for
a short answer: more than the whole hit path may cost. The JSON was written by
`model_dump` of a valid object, so `decode` rebuilds it with `model_construct`,
converting nested models, lists of models and enums from the field annotations, and
hands an object to `model_validate` only when one of its fields needs real parsing
(bytes, timestamps, unions of models). The result compares equal to `model_validate`'s.
"""

from __future__ import annotations

import enum
import functools
import json
import types as pytypes
import typing
from collections.abc import Callable, Sequence
from typing import Any

from google.genai import types
from pydantic import BaseModel

__all__ = ["decode", "decode_entry", "encode", "encode_wire", "rebuild", "to_json"]

Response = types.GenerateContentResponse

# Never stored: the HTTP headers of the original answer, and what only makes sense
# for the call that produced it.
_DROPPED = {"sdk_http_response", "automatic_function_calling_history", "parsed"}

_Convert = Callable[[Any], Any]


def to_json(response: Response) -> dict[str, Any]:
    data: dict[str, Any] = response.model_dump(mode="json", exclude_none=True, exclude=_DROPPED)
    return data


def encode(*, model: str, responses: Sequence[Response], stream: bool) -> bytes:
    """A stored entry: the answering model and the response (or a stream's chunks)."""
    body = {"model": model, "stream": stream, "chunks": [to_json(r) for r in responses]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_wire(
    *, model: str, bodies: Sequence[bytes], stream: bool, openai: bool = False
) -> bytes:
    """A stored entry kept as the API's own JSON (an HTTP-level cache such as the
    gateway's), so a hit hands back the bytes the API sent. `openai`: the answer of
    Gemini's OpenAI-compatible surface, which no SDK type of Gemini's reads."""
    wire = [b.decode("utf-8") for b in bodies]
    body: dict[str, Any] = {"model": model, "stream": stream, "wire": wire}
    if openai:
        body["surface"] = "openai"
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(value: bytes) -> tuple[str, bool, list[Response]]:
    """(model, stream, responses) of a stored entry."""
    model, stream, responses, _ = decode_entry(value)
    return model, stream, responses


def decode_entry(value: bytes) -> tuple[str, bool, list[Response], tuple[bytes, ...] | None]:
    """(model, stream, responses, the API's JSON of each when kept) of a stored entry.

    The API's JSON is camelCase, which the SDK's models read by their aliases; it is
    validated (not rebuilt by `rebuild`), as no `model_dump` vouches for its shape."""
    body = json.loads(value)
    wire = body.get("wire")
    if wire is not None:
        raw = tuple(t.encode("utf-8") for t in wire)
        if body.get("surface") == "openai":
            return body["model"], bool(body["stream"]), [], raw
        responses = [Response.model_validate_json(r) for r in raw]
        return body["model"], bool(body["stream"]), responses, raw
    chunks = [rebuild(Response, c) for c in body["chunks"]]
    return body["model"], bool(body["stream"]), chunks, None


_PLAIN = (str, int, float, bool)


def _identity(value: Any) -> Any:
    return value


@functools.cache
def _converter(annotation: Any) -> _Convert | None:
    """How to turn a field's JSON into its value, or None when it needs validation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, pytypes.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _converter(args[0]) if len(args) == 1 else None
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        inner = _converter(item)
        if inner is None:
            return None
        if inner is _identity:
            return list
        return lambda values: [inner(v) for v in values]
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            model = annotation
            return lambda data: rebuild(model, data)
        if issubclass(annotation, enum.Enum):
            return annotation
        if issubclass(annotation, _PLAIN):
            return _identity
    return None


@functools.cache
def _converters(model: type[BaseModel]) -> dict[str, _Convert | None]:
    fields = model.model_fields.items()
    return {name: _converter(info.annotation) for name, info in fields}  # type: ignore[arg-type]


M = typing.TypeVar("M", bound=BaseModel)

_IMMUTABLE = (type(None), str, int, float, bool, enum.Enum)


@functools.cache
def _defaults(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """Every field's (and private attribute's) default when all are plain immutable
    values, as in the SDK's types; None when `model_construct` must do it (factories)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.default_factory is not None or not isinstance(info.default, _IMMUTABLE):
            return None
        fields[name] = info.default
    private: dict[str, Any] | None = None
    if model.__private_attributes__:
        private = {}
        for name, attr in model.__private_attributes__.items():
            default = getattr(attr, "default", None)
            if getattr(attr, "default_factory", None) is not None or not isinstance(
                default, _IMMUTABLE
            ):
                return None
            private[name] = default
    return fields, private


def _construct(model: type[M], values: dict[str, Any]) -> M:
    # What `model_construct` does, without resolving each default on every call (it
    # costs ~1 µs per field, and an SDK Part has dozens of fields).
    defaults = _defaults(model)
    if defaults is None:
        return model.model_construct(**values)
    fields, private = defaults
    obj = model.__new__(model)
    state = dict(fields)
    state.update(values)
    object.__setattr__(obj, "__dict__", state)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", dict(private) if private is not None else None)
    return obj


def rebuild(model: type[M], data: dict[str, Any]) -> M:
    """`model.model_validate(data)` for JSON written by `model_dump(mode="json")`, fast."""
    converters = _converters(model)
    values: dict[str, Any] = {}
    for name, raw in data.items():
        convert = converters.get(name)
        if convert is None:  # unknown, or needs parsing: let pydantic do this object
            return model.model_validate(data)
        try:
            values[name] = convert(raw)
        except ValueError:  # an enum value this SDK does not know
            return model.model_validate(data)
    return _construct(model, values)
