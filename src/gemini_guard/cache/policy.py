"""Which calls are cached, and for how long: the pure decision.

By default (`policy="deterministic"`) a call is cached when its answer is
reproducible: `temperature` is 0. Any call can be marked either way:

- in the request, with the label `gemini-guard-cache` in `config.labels`
  (`"yes"`/`"no"`, or a TTL in seconds such as `"600"` which also means yes). The
  label is the cache's own: it is removed before the request is sent, so it reaches
  neither the API (which rejects `labels` outside Vertex AI) nor the cache key;
- around a block of code, with `cache_options(cacheable=..., ttl=...)`.

The request's label wins over the block, and the block over the policy.
`policy="marked"` caches only marked calls; `policy="all"` caches every call not
marked "no"; `policy="off"` caches nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gemini_guard.errors import ConfigError

__all__ = [
    "CACHE_LABEL",
    "CallOptions",
    "Policy",
    "cache_options",
    "decide",
    "split_label",
]

CACHE_LABEL = "gemini-guard-cache"

Policy = Literal["deterministic", "marked", "all", "off"]


@dataclass(frozen=True, slots=True)
class CallOptions:
    """A per-call override: cacheable (None: leave it to the policy) and TTL."""

    cacheable: bool | None = None
    ttl: float | None = None


_NO_OPTIONS = CallOptions()  # frozen: safe to share as the default
_scoped: contextvars.ContextVar[CallOptions] = contextvars.ContextVar(
    "gemini_guard_cache_options",
    default=_NO_OPTIONS,
)


@contextlib.contextmanager
def cache_options(*, cacheable: bool | None = None, ttl: float | None = None) -> Iterator[None]:
    """Mark the calls made inside the block (this thread or task): cacheable or not,
    and their TTL in seconds."""
    if ttl is not None and not ttl > 0:
        raise ConfigError(f"cache_options(ttl={ttl!r}): the TTL must be more than 0 seconds")
    token = _scoped.set(CallOptions(cacheable=cacheable, ttl=ttl))
    try:
        yield
    finally:
        _scoped.reset(token)


def _parse_label(value: object) -> CallOptions:
    text = str(value).strip().lower()
    if text in {"yes", "true", "on", "1"}:
        return CallOptions(cacheable=True)
    if text in {"no", "false", "off", "0"}:
        return CallOptions(cacheable=False)
    try:
        ttl = float(text)
    except ValueError:
        ttl = 0.0
    if ttl > 0:
        return CallOptions(cacheable=True, ttl=ttl)
    raise ConfigError(
        f"labels[{CACHE_LABEL!r}]={value!r}: use 'yes', 'no' or a TTL in seconds such as '600'"
    )


def split_label(config: Any) -> tuple[Any, CallOptions]:
    """`config` without the cache's label, and what the label asked for."""
    if config is None:
        return None, CallOptions()
    if isinstance(config, Mapping):
        labels = config.get("labels")
        if not isinstance(labels, Mapping) or CACHE_LABEL not in labels:
            return config, CallOptions()
        rest = {k: v for k, v in labels.items() if k != CACHE_LABEL}
        return {**config, "labels": rest or None}, _parse_label(labels[CACHE_LABEL])
    labels = getattr(config, "labels", None)
    if not labels or CACHE_LABEL not in labels:
        return config, CallOptions()
    rest = {k: v for k, v in labels.items() if k != CACHE_LABEL}
    return config.model_copy(update={"labels": rest or None}), _parse_label(labels[CACHE_LABEL])


def _temperature(config: Any) -> Any:
    if config is None:
        return None
    if isinstance(config, Mapping):
        return config.get("temperature")
    return getattr(config, "temperature", None)


def decide(config: Any, label: CallOptions, *, policy: Policy, default_ttl: float) -> float | None:
    """The TTL to cache this call for, or None when it is not to be cached."""
    scoped = _scoped.get()
    cacheable = label.cacheable if label.cacheable is not None else scoped.cacheable
    ttl = label.ttl or scoped.ttl or default_ttl
    if policy == "off" or cacheable is False:
        return None
    if cacheable is True or policy == "all":
        return ttl
    if policy == "marked":
        return None
    return ttl if _temperature(config) == 0 else None
