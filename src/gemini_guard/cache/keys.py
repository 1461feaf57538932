"""Canonical requests and their cache keys.

Two calls get the same key exactly when they would put the same request on the wire,
whatever shape the caller used: camelCase or snake_case field names, SDK pydantic
objects or plain dicts, `0` or `0.0`. What does not change the answer is left out:
`http_options` (timeouts, headers, base URL), `labels` (billing tags, and the cache's
own per-call marker), and client-side switches such as automatic function calling.
The API key is never an input to a key: the key is a function of the request alone,
namespaced by the scope it is answered for (`gemini_guard.cache.scope`: the response
cache passes the scope's HMAC digest, never a name), so two scopes never share an entry.

Normalisation walks the request alongside the SDK's own type annotations, so only
real field names are renamed (a schema property called `maxTokens` stays as it is),
and it never calls the SDK's validators (they cost tens of microseconds per object,
more than a whole cache hit may take).

A request that cannot be written as JSON (a Python function in `tools`, an image
object) has no key: `request_key` returns None and the call is simply not cached.

`request_key` first tries a fast path for the common shapes (text contents, a config
of plain values), which writes the canonical JSON directly; its output is the same
string `canonical_request(...).as_json()` gives (tests compare the two on generated
requests), so both paths give one key.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import math
import types as pytypes
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.genai import types
from pydantic import BaseModel

__all__ = [
    "KEY_VERSION",
    "VOLATILE_CONFIG_FIELDS",
    "CanonicalRequest",
    "Uncacheable",
    "canonical_config",
    "canonical_contents",
    "canonical_request",
    "digest",
    "request_key",
]

# Bump when the canonical form changes, so old entries are never misread.
KEY_VERSION = 1

# Config fields that never change the model's answer.
VOLATILE_CONFIG_FIELDS = frozenset(
    {"http_options", "labels", "automatic_function_calling", "should_return_http_response"}
)


class Uncacheable(ValueError):
    """The request holds something that has no stable JSON form (a function, an object)."""


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """A request in canonical JSON form (snake_case names, no volatile fields)."""

    model: str  # without "models/"
    contents: list[Any]
    config: dict[str, Any]

    def as_json(self) -> str:
        return _dumps({"model": self.model, "contents": self.contents, "config": self.config})


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- walking values alongside the SDK's annotations --------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """What an annotation allows, reduced to what normalisation needs."""

    model: type[BaseModel] | None = None  # a dict here is this model
    item: Any = None  # annotation of list items (None: not a list)
    value: Any = None  # annotation of dict values (None: not a str-keyed dict)


_ANY_SHAPE = _Shape()


@functools.cache
def _shape(annotation: Any) -> _Shape:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, pytypes.UnionType):
        models: list[type[BaseModel]] = []
        item = value = None
        for arg in typing.get_args(annotation):
            sub = _shape(arg)
            if sub.model is not None:
                models.append(sub.model)
            item = item if item is not None else sub.item
            value = value if value is not None else sub.value
        # Two model types in one union (Content | File | Part): a dict could be either,
        # so keep its keys as written rather than guess.
        return _Shape(model=models[0] if len(models) == 1 else None, item=item, value=value)
    if origin in (list, tuple, typing.Sequence):
        args = typing.get_args(annotation)
        return _Shape(item=args[0] if args else Any)
    if origin in (dict, typing.Mapping):
        args = typing.get_args(annotation)
        return _Shape(value=args[1] if len(args) == 2 else Any)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _Shape(model=annotation)
    return _ANY_SHAPE


@functools.cache
def _fields(model: type[BaseModel]) -> dict[str, tuple[str, Any]]:
    """Both spellings of each field (alias and name) -> (name, annotation)."""
    out: dict[str, tuple[str, Any]] = {}
    for name, info in model.model_fields.items():
        out[name] = (name, info.annotation)
        if info.alias:
            out[info.alias] = (name, info.annotation)
    return out


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # 0 and 0.0 (or top_k 40 and 40.0) send the same request.
        return int(value) if value.is_integer() else value
    if isinstance(value, enum.Enum):
        return _scalar(value.value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise Uncacheable(f"a {type(value).__name__} has no stable JSON form")


def _normal(value: Any, annotation: Any) -> Any:
    if isinstance(value, BaseModel):
        model = type(value)
        # Every set field, defaults included (UserContent's role is a default).
        return _normal_model({name: getattr(value, name) for name in model.model_fields}, model)
    shape = _shape(annotation)
    if isinstance(value, Mapping):
        if shape.model is not None:
            return _normal_model(value, shape.model)
        return {
            str(k): _normal(v, shape.value if shape.value is not None else Any)
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, list | tuple):
        item = shape.item if shape.item is not None else Any
        return [_normal(v, item) for v in value]
    return _scalar(value)


def _normal_model(data: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    fields = _fields(model)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        name, annotation = fields.get(key, (key, Any))
        out[name] = _normal(value, annotation)
    return out


# -- contents ----------------------------------------------------------------------


def _user(parts: list[Any]) -> dict[str, Any]:
    return {"role": "user", "parts": parts}


def canonical_contents(contents: Any) -> list[Any]:
    """`contents` as the list of `Content`s the SDK sends, in canonical JSON form.

    Strings, lists of strings and `Content` objects or dicts are normalised directly;
    any other shape (loose parts, files, images) goes through the SDK's own
    transformer first, so the grouping of parts into turns is exactly the SDK's.
    """
    if isinstance(contents, str):
        return [_user([{"text": contents}])]
    if isinstance(contents, list) and contents:
        if all(isinstance(c, str) for c in contents):
            return [_user([{"text": c} for c in contents])]
        if all(_is_content(c) for c in contents):
            return [_normal(c, types.Content) for c in contents]
    elif _is_content(contents):
        return [_normal(contents, types.Content)]
    from google.genai import _transformers

    try:
        normal = _transformers.t_contents(contents)
    except Exception as exc:
        raise Uncacheable(f"contents of an unexpected shape: {exc}") from exc
    return [_normal(c, types.Content) for c in normal]


def _is_content(value: Any) -> bool:
    if isinstance(value, types.Content):
        return True
    # A dict is a Content when it has `parts` or `role`, never a part's own keys.
    return isinstance(value, Mapping) and bool(value) and set(value) <= {"parts", "role"}


# -- config ------------------------------------------------------------------------


def canonical_config(config: Any) -> dict[str, Any]:
    """`config` (dict or `GenerateContentConfig`) without volatile fields, canonical."""
    if config is None:
        return {}
    normal = _normal(config, types.GenerateContentConfig)
    if not isinstance(normal, dict):
        raise Uncacheable(f"config must be a dict or GenerateContentConfig, got {config!r}")
    for name in VOLATILE_CONFIG_FIELDS:
        normal.pop(name, None)
    return normal


def canonical_request(*, model: str, contents: Any, config: Any) -> CanonicalRequest:
    """The canonical form of a `generate_content` request (raises `Uncacheable`)."""
    return CanonicalRequest(
        model=model.removeprefix("models/"),
        contents=canonical_contents(contents),
        config=canonical_config(config),
    )


_SALT = f"gemini-guard-cache/v{KEY_VERSION}\x00"


def digest(namespace: str, payload: str) -> str:
    """sha256 of a namespace and a canonical payload, as hex."""
    return hashlib.sha256(f"{_SALT}{namespace}\x00{payload}".encode()).hexdigest()


# -- the fast path -----------------------------------------------------------------

# What `json.dumps(..., ensure_ascii=False)` writes for a string.
_json_str: Callable[[str], str] = json.encoder.encode_basestring


def _json_scalar(value: Any) -> str | None:
    """The canonical JSON of a plain value (as `_scalar` then `_dumps` would write
    it), or None when it is not one the fast path knows."""
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value.is_integer():
            return int.__repr__(int(value))
        return float.__repr__(value) if math.isfinite(value) else None
    return None


def _fast_config(config: Any) -> str | None:
    """The canonical JSON of a config holding only plain values, or None."""
    if config is None:
        return "{}"
    if type(config) is dict:
        items = config.items()
        names = _fields(types.GenerateContentConfig)
    elif type(config) is types.GenerateContentConfig:
        items = config.__dict__.items()
        names = None
    else:
        return None
    out: dict[str, str] = {}
    for key, value in items:
        if value is None:
            continue
        if type(key) is not str:
            return None
        if names is not None:
            key = names.get(key, (key, None))[0]
        text = _json_scalar(value)
        if text is None:
            return None
        out[key] = text
    parts = [
        f"{_json_str(k)}:{v}" for k, v in sorted(out.items()) if k not in VOLATILE_CONFIG_FIELDS
    ]
    return "{" + ",".join(parts) + "}"


def _fast_payload(model: Any, contents: Any, config: Any) -> str | None:
    """`canonical_request(...).as_json()` for text contents and a plain config, or None
    for any other shape."""
    if type(model) is not str:
        return None
    if type(contents) is str:
        parts = '{"text":' + _json_str(contents) + "}"
    elif type(contents) is list and contents and all(type(c) is str for c in contents):
        parts = ",".join('{"text":' + _json_str(c) + "}" for c in contents)
    else:
        return None
    canonical_config = _fast_config(config)
    if canonical_config is None:
        return None
    return (
        '{"config":'
        + canonical_config
        + ',"contents":[{"parts":['
        + parts
        + '],"role":"user"}],"model":'
        + _json_str(model.removeprefix("models/"))
        + "}"
    )


def request_key(*, project: str, model: str, contents: Any, config: Any) -> str | None:
    """The cache key of a request in the namespace `project` (the response cache passes
    a scope digest): "<project>/<sha256>", or None when the request cannot be cached
    (see `Uncacheable`)."""
    payload = _fast_payload(model, contents, config)
    if payload is None:
        try:
            canonical = canonical_request(model=model, contents=contents, config=config)
        except Uncacheable:
            return None
        payload = canonical.as_json()
    return f"{project}/{digest(project, payload)}"
