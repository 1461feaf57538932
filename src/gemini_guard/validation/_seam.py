"""The Guard's preflight seam: `preflight(mode)` builds the `validation=` callable it takes.

    guard = Guard(models=[...], validation=preflight("strict", catalog=catalog))

- "strict": a request with any error is not sent; `RequestRejected` is raised, carrying
  the `Diagnosis` the API would have answered with (400 or 404) and no attempts.
- "warn": nothing is blocked; `on_problems(model, problems)` is told (an event).
- "off": no check at all (`preflight` returns None).

The check runs before every guarded call, so its common case is made cheap: the
verdict on a request's model and config is remembered per distinct shape, keyed by
the config's *content* (a frozen copy of its fields, never its id: dicts and the
SDK's config objects are mutable), and a clean shape with a one-string prompt
needs only the prompt's length checked. Anything else runs the full check.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal

import pydantic

from gemini_guard.errors import ConfigError
from gemini_guard.validation._catalog import ModelCatalog
from gemini_guard.validation._problem import Problem, rejection
from gemini_guard.validation._validate import (
    ModelSource,
    ShapeVerdict,
    check_request,
    shape_verdict,
)

__all__ = ["VALIDATION_MODES", "ValidationMode", "preflight"]

ValidationMode = Literal["strict", "warn", "off"]
VALIDATION_MODES: tuple[ValidationMode, ...] = ("strict", "warn", "off")


def preflight(
    mode: ValidationMode = "strict",
    *,
    catalog: ModelSource | None = None,
    on_problems: Callable[[str, list[Problem]], None] | None = None,
) -> Callable[[str, Any, Any], None] | None:
    """The `(model, contents, config) -> None` check for `mode`, or None for "off"."""
    if mode not in VALIDATION_MODES:
        raise ConfigError(f"validation={mode!r} is not one of: {', '.join(VALIDATION_MODES)}")
    if mode == "off":
        return None

    verdicts = _ShapeCache(catalog)
    # The commonest call, a prompt string and no config, reduced to one length test:
    # per model, the longest such prompt that passes (only without a catalog, whose
    # list may change under a verdict).
    plain_fits: dict[str, float] = {}

    def check(model: str, contents: Any, config: Any) -> None:
        if type(contents) is str:
            if config is None:
                longest = plain_fits.get(model)
                if longest is not None and 0 < len(contents) <= longest:
                    return
            verdict = verdicts.get(model, config)
            if verdict is not None and verdict.clean and verdict.fits(contents):
                if config is None and catalog is None:
                    if len(plain_fits) >= _SHAPES_KEPT:
                        plain_fits.clear()
                    plain_fits[model] = verdict.longest_text()
                return
        problems = check_request(model, contents, config, catalog=catalog)
        if not problems:
            return
        if on_problems is not None:
            on_problems(model, problems)
        if mode == "strict" and any(p.is_error for p in problems):
            raise rejection(problems, model=model)

    return check


# Distinct shapes remembered per check; past this, the cache starts over (a caller
# that builds a new config every call gains nothing from it and must not grow it).
_SHAPES_KEPT = 256
# Containers deeper than this are not worth freezing: no cache for that config.
_MAX_DEPTH = 8


class _Uncacheable(Exception):
    """A config holding something whose content cannot be frozen (a callable tool...)."""


def _frozen(value: Any, depth: int = 0) -> Hashable:
    """A hashable copy of `value`'s content, each value tagged with its type (so that
    True, 1 and 1.0, equal in Python, stay apart: validation tells them apart)."""
    if value is None:
        return None
    kind = type(value)
    if kind in (str, int, float, bool, bytes) or isinstance(value, enum.Enum):
        return (kind, value)
    if depth >= _MAX_DEPTH:
        raise _Uncacheable
    depth += 1
    if isinstance(value, Mapping):
        return (kind, tuple((k, _frozen(v, depth)) for k, v in value.items()))
    if kind in (list, tuple):
        return (kind, tuple(_frozen(v, depth) for v in value))
    if isinstance(value, pydantic.BaseModel):
        extra = value.__pydantic_extra__
        if extra:
            raise _Uncacheable
        return (kind, tuple((k, _frozen(v, depth)) for k, v in value.__dict__.items()))
    raise _Uncacheable


class _ShapeCache:
    """`ShapeVerdict`s by (model, config content), for one catalog.

    A `ModelCatalog` refreshes its list: a verdict holds the list it was made with
    and is used only while the catalog still answers that same list. Other model
    sources (a list, a dict) may be changed in place by the caller: no cache.
    """

    __slots__ = ("_catalog", "_verdicts")

    def __init__(self, catalog: ModelSource | None) -> None:
        self._catalog = catalog
        self._verdicts: dict[Hashable, tuple[object, ShapeVerdict]] = {}

    def get(self, model: str, config: Any) -> ShapeVerdict | None:
        catalog = self._catalog
        if catalog is None:
            listing: object = None
        elif isinstance(catalog, ModelCatalog):
            listing = catalog.models()
        else:
            return None
        try:
            key = (model, None if config is None else _frozen(config))
            entry = self._verdicts.get(key)
        except (_Uncacheable, TypeError):  # TypeError: an unhashable dict key or value
            return None
        if entry is not None and entry[0] is listing:
            return entry[1]
        verdict = shape_verdict(model, config, catalog=catalog)
        if len(self._verdicts) >= _SHAPES_KEPT:
            self._verdicts.clear()
        self._verdicts[key] = (listing, verdict)
        return verdict
