"""`CacheConfig`: the response cache's settings, as a configuration section."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gemini_guard.settings import Section

__all__ = ["CacheConfig"]


class CacheConfig(Section):
    """The response cache (see `gemini_guard.cache`). In TOML either a URL,
    `cache = "sqlite:///cache.db"`, or a `[cache]` table with these fields."""

    url: str = Field(default="memory://", pattern=r"^(memory|sqlite|redis|rediss|unix)://")
    ttl: float = Field(default=3600.0, gt=0)  # seconds an answer is kept
    max_entries: int = Field(default=10_000, ge=1)  # beyond: least recently used dropped
    policy: Literal["deterministic", "marked", "all", "off"] = "deterministic"
    coalesce: bool = True  # concurrent identical calls share one upstream call
    streams: bool = True  # cache completed streams, replayed as streams
    context: bool = False  # context caching (cachedContents) of long repeated prefixes
    context_min_tokens: int | None = Field(default=None, ge=1)  # None: the model's minimum
    context_min_repeats: int = Field(default=2, ge=1)  # times a prefix is seen first
    context_ttl: float = Field(default=3600.0, gt=0)
    context_refresh: float = Field(default=300.0, ge=0)  # refresh when less remains
    # Who shares answers: "project" (default; the key alone when no project is named),
    # "key", or "shared" across projects (an opt-in). See gemini_guard.cache.scope.
    scope: Literal["project", "key", "shared"] = "project"
    # Seconds an API key's acceptance lets it be served before one call goes upstream.
    credential_ttl: float = Field(default=600.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data
