"""Fresh copies of a decoded response, fast: a copier compiled once per stored entry.

A hit must hand the caller a response it owns (it may change it without touching the
cache). Rebuilding one from JSON costs ~30 µs for a short answer, `copy.deepcopy` or
`model_copy(deep=True)` ~70 µs: both rediscover, on every call, the structure of an
object that never changes. `copier(template)` walks the template once and returns a
function that rebuilds exactly that tree: each pydantic object gets a copy of its
`__dict__` (a C-level dict copy) with only its nested objects, lists and dicts
replaced by fresh copies; strings, numbers, enums and other immutable leaves are
shared, as a deep copy would share them.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import enum
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["copier"]

M = TypeVar("M", bound=BaseModel)

_IMMUTABLE = (
    type(None),
    str,
    int,
    float,
    bool,
    bytes,
    enum.Enum,
    dt.datetime,
    dt.date,
    dt.time,
    dt.timedelta,
    decimal.Decimal,
)

_set_attribute = object.__setattr__


def _immutable(value: Any) -> bool:
    return isinstance(value, _IMMUTABLE)


def copier(template: M) -> Callable[[], M]:
    """A function returning a fresh deep copy of `template` on each call (`template`
    itself must not change afterwards: the copier reads it on each call)."""
    make: Callable[[], M] = _of_model(template)
    return make


def _of(value: Any) -> Callable[[], Any]:
    if isinstance(value, BaseModel):
        return _of_model(value)
    if isinstance(value, list):
        if all(map(_immutable, value)):
            return value.copy
        items = [_of(v) for v in value]
        return lambda: [make() for make in items]
    if isinstance(value, dict):
        if all(map(_immutable, value.values())):
            return value.copy
        entries = [(k, _of(v)) for k, v in value.items()]
        return lambda: {k: make() for k, make in entries}
    # Anything else (a tuple of models, an unknown object): the general deep copy.
    return lambda: copy.deepcopy(value)


def _of_model(template: M) -> Callable[[], M]:
    model = type(template)
    base = template.__dict__
    nested = [(name, _of(v)) for name, v in base.items() if not _immutable(v)]
    fields_set = template.__pydantic_fields_set__
    extra = template.__pydantic_extra__
    private = template.__pydantic_private__
    make_extra = None if extra is None else _of(extra)
    make_private = None if private is None else _of(private)
    new = object.__new__

    def make() -> M:
        obj = new(model)
        state = base.copy()
        for name, make_value in nested:
            state[name] = make_value()
        _set_attribute(obj, "__dict__", state)
        _set_attribute(obj, "__pydantic_fields_set__", set(fields_set))
        _set_attribute(obj, "__pydantic_extra__", None if make_extra is None else make_extra())
        _set_attribute(
            obj, "__pydantic_private__", None if make_private is None else make_private()
        )
        return obj

    return make
