"""The Guard's preflight seam: `preflight(mode)` builds the `validate=` callable it takes.

    guard = Guard(models=[...], validate=preflight("strict", catalog=catalog))

- "strict": a request with any error is not sent; `RequestRejected` is raised, carrying
  the `Diagnosis` the API would have answered with (400 or 404) and no attempts.
- "warn": nothing is blocked; `on_problems(model, problems)` is told (an event).
- "off": no check at all (`preflight` returns None).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from gemini_guard.errors import ConfigError
from gemini_guard.validation._problem import Problem, rejection
from gemini_guard.validation._validate import ModelSource, check_request

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

    def check(model: str, contents: Any, config: Any) -> None:
        problems = check_request(model, contents, config, catalog=catalog)
        if not problems:
            return
        if on_problems is not None:
            on_problems(model, problems)
        if mode == "strict" and any(p.is_error for p in problems):
            raise rejection(problems, model=model)

    return check
