"""Context caching: a long prefix that repeats is sent once, then named.

Requests that share a long stable prefix (the system instruction, the tools and every
content but the last) pay for it in full each time. Gemini can hold such a prefix
server-side (`cachedContents`) and bill it at the cached-input price (a tenth of the
input price on 2.5 Flash). `ContextCaching`:

1. keys each request's prefix (same canonical form as the response cache);
2. once a prefix of at least `min_tokens` has been seen `min_repeats` times, creates a
   `cachedContents` entry holding it (`client.caches.create`);
3. while the entry lives, sends only the remaining contents with `cached_content=name`;
4. refreshes its TTL (`client.caches.update`) when less than `refresh` seconds remain,
   and creates it anew if it expired anyway;
5. deletes every entry it created on `close()` / `aclose()`.

The decisions are made by `ContextPlanner`, a pure object driven by the clock's wall
time; `ContextCaching` carries them out with the SDK (sync and asyncio).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.genai import types

from gemini_guard.cache.events import ContextCacheChanged
from gemini_guard.cache.keys import Uncacheable, _dumps, canonical_request, digest
from gemini_guard.cache.stats import Counters, context_savings
from gemini_guard.clock import Clock
from gemini_guard.telemetry import Telemetry
from gemini_guard.tokens import estimate_text_tokens, estimate_tokens

if TYPE_CHECKING:
    from google import genai

__all__ = [
    "ContextCaching",
    "ContextPlanner",
    "Create",
    "Prefix",
    "Refresh",
    "SendWhole",
    "Use",
    "default_min_tokens",
    "split_prefix",
]

_log = logging.getLogger("gemini_guard.cache")

# Documented minimum sizes of a context cache (tokens); other models: 1,024.
_MIN_TOKENS = {"gemini-2.5-pro": 4096}

# Fields a request may not set together with `cached_content`: they live in the cache.
_PREFIX_FIELDS = ("system_instruction", "tools", "tool_config")
_PREFIX_KEYS = {
    "system_instruction",
    "systemInstruction",
    "tools",
    "tool_config",
    "toolConfig",
}


def default_min_tokens(model: str) -> int:
    return _MIN_TOKENS.get(model.removeprefix("models/"), 1024)


@dataclass(frozen=True, slots=True)
class Prefix:
    """The stable part of a request, ready to be cached, and what is left to send."""

    key: str
    model: str
    tokens: int
    contents: list[Any]  # leading contents (canonical dicts)
    system_instruction: Any
    tools: Any
    tool_config: Any
    rest: list[Any]  # the last content


def split_prefix(*, project: str, model: str, contents: Any, config: Any) -> Prefix | None:
    """The prefix of a request, or None when it has none worth caching (one content
    and no system instruction, a `cached_content` already, no canonical form)."""
    try:
        canonical = canonical_request(model=model, contents=contents, config=config)
    except Uncacheable:
        return None
    cfg = canonical.config
    if cfg.get("cached_content"):
        return None
    leading = canonical.contents[:-1]
    system = cfg.get("system_instruction")
    if not leading and system is None:
        return None
    stable = {
        "model": canonical.model,
        "contents": leading,
        **{name: cfg[name] for name in _PREFIX_FIELDS if name in cfg},
    }
    tokens = estimate_tokens(leading) + estimate_tokens(system if system is not None else [])
    if cfg.get("tools") is not None:
        tokens += estimate_text_tokens(_dumps(cfg["tools"]))
    return Prefix(
        key=digest(f"context/{project}", _dumps(stable)),
        model=canonical.model,
        tokens=tokens,
        contents=leading,
        system_instruction=system,
        tools=cfg.get("tools"),
        tool_config=cfg.get("tool_config"),
        rest=canonical.contents[-1:],
    )


# -- the pure planner ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendWhole:
    """Send the request as it is."""


@dataclass(frozen=True, slots=True)
class Create:
    """Create a cachedContents entry for the prefix, then use it."""


@dataclass(frozen=True, slots=True)
class Refresh:
    """Extend the entry's TTL, then use it."""

    name: str


@dataclass(frozen=True, slots=True)
class Use:
    name: str


Step = SendWhole | Create | Refresh | Use


class _Entry:
    __slots__ = ("busy", "expire_at", "failed", "name", "seen", "tokens")

    def __init__(self) -> None:
        self.seen = 0
        self.name: str | None = None
        self.expire_at = 0.0
        self.busy = False  # a create/refresh is under way (other callers send whole)
        self.failed = False  # creation was refused: never try this prefix again
        self.tokens = 0


class ContextPlanner:
    """Decides, per prefix, whether to send whole, create, refresh or use (thread-safe)."""

    def __init__(
        self,
        *,
        min_tokens: int | None = None,
        min_repeats: int = 2,
        ttl: float = 3600.0,
        refresh: float = 300.0,
    ) -> None:
        self.min_tokens = min_tokens
        self.min_repeats = min_repeats
        self.ttl = ttl
        self.refresh = min(refresh, ttl / 2)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def decide(self, prefix: Prefix, *, now: float) -> Step:
        minimum = self.min_tokens or default_min_tokens(prefix.model)
        if prefix.tokens < minimum:
            return SendWhole()
        with self._lock:
            entry = self._entries.setdefault(prefix.key, _Entry())
            entry.seen += 1
            if entry.failed or entry.busy:
                return SendWhole()
            if entry.name is not None and now < entry.expire_at:
                if entry.expire_at - now <= self.refresh:
                    entry.busy = True
                    return Refresh(entry.name)
                return Use(entry.name)
            if entry.seen < self.min_repeats:
                return SendWhole()
            entry.busy = True
            entry.name = None  # expired (or never made): make it anew
            return Create()

    def created(self, prefix: Prefix, name: str, *, expire_at: float) -> None:
        with self._lock:
            entry = self._entries[prefix.key]
            entry.name, entry.expire_at, entry.busy = name, expire_at, False
            entry.tokens = prefix.tokens

    def refreshed(self, prefix: Prefix, *, expire_at: float) -> None:
        with self._lock:
            entry = self._entries[prefix.key]
            entry.expire_at, entry.busy = expire_at, False

    def failed(self, prefix: Prefix, *, permanent: bool) -> None:
        with self._lock:
            entry = self._entries[prefix.key]
            entry.busy = False
            entry.name = None
            entry.failed = entry.failed or permanent

    def forget(self, name: str) -> None:
        """The entry `name` is gone (refused by the API): stop using it."""
        with self._lock:
            for entry in self._entries.values():
                if entry.name == name:
                    entry.name = None

    def live(self, *, now: float) -> list[str]:
        """Names of the entries believed alive."""
        with self._lock:
            return [e.name for e in self._entries.values() if e.name and e.expire_at > now]

    def drain(self) -> list[str]:
        """Every name held, forgotten (for deletion)."""
        with self._lock:
            names = [e.name for e in self._entries.values() if e.name]
            for entry in self._entries.values():
                entry.name = None
            return names


# -- the SDK driver ----------------------------------------------------------------


def _without_prefix(config: Any, name: str) -> Any:
    """The caller's config minus what now lives in the cache, naming the cache."""
    if config is None:
        return {"cached_content": name}
    if isinstance(config, Mapping):
        out = {k: v for k, v in config.items() if k not in _PREFIX_KEYS}
        out.pop("cachedContent", None)
        out["cached_content"] = name
        return out
    update: dict[str, Any] = dict.fromkeys(_PREFIX_FIELDS)
    update["cached_content"] = name
    return config.model_copy(update=update)


def _create_config(prefix: Prefix, ttl: float) -> types.CreateCachedContentConfig:
    return types.CreateCachedContentConfig.model_validate(
        {
            "contents": prefix.contents or None,
            "system_instruction": prefix.system_instruction,
            "tools": prefix.tools,
            "tool_config": prefix.tool_config,
            "ttl": f"{ttl:.0f}s",
            "display_name": f"gemini-guard {prefix.key[:12]}",
        }
    )


def _expiry(cached: types.CachedContent, fallback: float) -> float:
    if cached.expire_time is not None:
        return cached.expire_time.timestamp()
    return fallback


class ContextCaching:
    """Context caching for one client and project (see the module docstring)."""

    def __init__(
        self,
        client: genai.Client,
        *,
        planner: ContextPlanner,
        project: str,
        clock: Clock,
        telemetry: Telemetry,
        counters: Counters,
    ) -> None:
        self.client = client
        self.planner = planner
        self.project = project
        self.clock = clock
        self.telemetry = telemetry
        self.counters = counters
        self._made: set[str] = set()  # names created here and not yet deleted
        self._lock = threading.Lock()

    def _event(self, action: str, prefix: Prefix | None, name: str, **more: Any) -> None:
        self.telemetry.emit(
            ContextCacheChanged(
                timestamp=self.clock.time(),
                call_id="",
                model=prefix.model if prefix else "",
                action=action,
                name=name,
                tokens=prefix.tokens if prefix else 0,
                **more,
            )
        )

    def _plan(self, model: str, contents: Any, config: Any) -> tuple[Prefix, Step] | None:
        prefix = split_prefix(project=self.project, model=model, contents=contents, config=config)
        if prefix is None:
            return None
        return prefix, self.planner.decide(prefix, now=self.clock.time())

    def _created(self, prefix: Prefix, cached: types.CachedContent) -> str:
        name = cached.name or ""
        expire_at = _expiry(cached, self.clock.time() + self.planner.ttl)
        self.planner.created(prefix, name, expire_at=expire_at)
        with self._lock:
            self._made.add(name)
        self.counters.add(context_created=1)
        self._event("created", prefix, name, expire_at=expire_at)
        return name

    def _refreshed(self, prefix: Prefix, name: str, cached: types.CachedContent) -> None:
        expire_at = _expiry(cached, self.clock.time() + self.planner.ttl)
        self.planner.refreshed(prefix, expire_at=expire_at)
        self.counters.add(context_refreshed=1)
        self._event("refreshed", prefix, name, expire_at=expire_at)

    def _failed(self, prefix: Prefix, name: str, exc: Exception, *, creating: bool) -> None:
        # A refused creation (too small, unsupported model) will be refused again.
        permanent = creating and getattr(exc, "code", None) in {400, 403, 404}
        self.planner.failed(prefix, permanent=permanent)
        _log.warning("context cache %s failed: %s", "creation" if creating else "refresh", exc)
        self._event("failed", prefix, name, detail=f"{type(exc).__name__}: {exc}")

    def rewrite(self, prefix: Prefix, name: str, config: Any) -> tuple[list[Any], Any]:
        return prefix.rest, _without_prefix(config, name)

    def used(self, prefix: Prefix, name: str, response: Any) -> None:
        """Account for a response served with the cache `name`."""
        usage = getattr(response, "usage_metadata", None)
        cached = getattr(usage, "cached_content_token_count", None)
        tokens = cached if isinstance(cached, int) else prefix.tokens
        saved = context_savings(prefix.model, tokens)
        self.counters.add(context_uses=1, context_tokens=tokens, context_dollars_saved=saved)
        self._event("used", prefix, name, dollars_saved=saved)

    def rejected(self, name: str) -> None:
        """The API refused a request naming `name` (gone, or another model): drop it."""
        self.planner.forget(name)

    # sync --------------------------------------------------------------------------

    def prepare(self, model: str, contents: Any, config: Any) -> tuple[Prefix, str] | None:
        """The cache to send this request with (creating or refreshing it), or None."""
        planned = self._plan(model, contents, config)
        if planned is None:
            return None
        prefix, step = planned
        if isinstance(step, SendWhole):
            return None
        if isinstance(step, Use):
            return prefix, step.name
        if isinstance(step, Refresh):
            try:
                cached = self.client.caches.update(
                    name=step.name,
                    config=types.UpdateCachedContentConfig(ttl=f"{self.planner.ttl:.0f}s"),
                )
            except Exception as exc:
                self._failed(prefix, step.name, exc, creating=False)
                return None
            self._refreshed(prefix, step.name, cached)
            return prefix, step.name
        try:
            cached = self.client.caches.create(
                model=prefix.model, config=_create_config(prefix, self.planner.ttl)
            )
        except Exception as exc:
            self._failed(prefix, "", exc, creating=True)
            return None
        return prefix, self._created(prefix, cached)

    def close(self) -> None:
        """Delete every cache entry created here."""
        with self._lock:
            names, self._made = sorted(self._made), set()
        self.planner.drain()
        for name in names:
            try:
                self.client.caches.delete(name=name)
            except Exception as exc:  # expired already: nothing to free
                _log.info("context cache %s not deleted: %s", name, exc)
                continue
            self.counters.add(context_deleted=1)
            self._event("deleted", None, name)

    # asyncio -----------------------------------------------------------------------

    async def aprepare(self, model: str, contents: Any, config: Any) -> tuple[Prefix, str] | None:
        planned = self._plan(model, contents, config)
        if planned is None:
            return None
        prefix, step = planned
        if isinstance(step, SendWhole):
            return None
        if isinstance(step, Use):
            return prefix, step.name
        caches = self.client.aio.caches
        if isinstance(step, Refresh):
            try:
                cached = await caches.update(
                    name=step.name,
                    config=types.UpdateCachedContentConfig(ttl=f"{self.planner.ttl:.0f}s"),
                )
            except Exception as exc:
                self._failed(prefix, step.name, exc, creating=False)
                return None
            self._refreshed(prefix, step.name, cached)
            return prefix, step.name
        try:
            cached = await caches.create(
                model=prefix.model, config=_create_config(prefix, self.planner.ttl)
            )
        except Exception as exc:
            self._failed(prefix, "", exc, creating=True)
            return None
        return prefix, self._created(prefix, cached)

    async def aclose(self) -> None:
        with self._lock:
            names, self._made = sorted(self._made), set()
        self.planner.drain()
        for name in names:
            try:
                await self.client.aio.caches.delete(name=name)
            except Exception as exc:
                _log.info("context cache %s not deleted: %s", name, exc)
                continue
            self.counters.add(context_deleted=1)
            self._event("deleted", None, name)
