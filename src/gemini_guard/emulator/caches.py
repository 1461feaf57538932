"""Context caches (`cachedContents`): created, listed, read, updated and deleted per
project, expiring at their `expireTime` on the emulator's wall clock. Their tokens
appear as `cachedContentTokenCount` in the usage of requests that use them."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["CachedContent", "CachedContents", "min_cache_tokens", "parse_duration", "rfc3339"]

# Documented minimums of context caching (tokens); other models default to 1,024.
_MIN_TOKENS = {"gemini-2.5-pro": 4096}
DEFAULT_TTL = 3600.0


def min_cache_tokens(model: str, override: int | None) -> int:
    if override is not None:
        return override
    return _MIN_TOKENS.get(model, 1024)


def rfc3339(wall: float) -> str:
    """Epoch seconds as the API writes timestamps: 2026-01-01T00:00:00.123456Z."""
    stamp = dt.datetime.fromtimestamp(wall, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_duration(text: str) -> float | None:
    """A protobuf Duration ("3600s", "1.5s") in seconds, or None if malformed."""
    match = _DURATION.match(text)
    return float(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class CachedContent:
    name: str
    project: str
    model: str  # "models/<id>"
    display_name: str | None
    contents: tuple[Mapping[str, Any], ...]
    system_instruction: Mapping[str, Any] | None
    tools: Any
    tokens: int
    create_time: float
    update_time: float
    expire_time: float

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "expireTime": rfc3339(self.expire_time),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }
        if self.display_name:
            out["displayName"] = self.display_name
        return out


class CachedContents:
    def __init__(self, *, seed: int) -> None:
        self._seed = seed
        self._ids = itertools.count(1)
        self._items: dict[str, CachedContent] = {}

    def _new_name(self) -> str:
        digest = hashlib.sha256(f"cache:{self._seed}:{next(self._ids)}".encode()).hexdigest()
        return f"cachedContents/{digest[:12]}"

    def create(
        self,
        *,
        project: str,
        model: str,
        display_name: str | None,
        contents: tuple[Mapping[str, Any], ...],
        system_instruction: Mapping[str, Any] | None,
        tools: Any,
        tokens: int,
        now: float,
        expire_time: float,
    ) -> CachedContent:
        item = CachedContent(
            name=self._new_name(),
            project=project,
            model=model,
            display_name=display_name,
            contents=contents,
            system_instruction=system_instruction,
            tools=tools,
            tokens=tokens,
            create_time=now,
            update_time=now,
            expire_time=expire_time,
        )
        self._items[item.name] = item
        return item

    def get(self, name: str, *, project: str, now: float) -> CachedContent | None:
        item = self._items.get(name)
        if item is None or item.project != project:
            return None
        if item.expire_time <= now:
            del self._items[name]
            return None
        return item

    def update(
        self, name: str, *, project: str, now: float, expire_time: float
    ) -> CachedContent | None:
        item = self.get(name, project=project, now=now)
        if item is None:
            return None
        item = replace(item, update_time=now, expire_time=expire_time)
        self._items[name] = item
        return item

    def delete(self, name: str, *, project: str, now: float) -> bool:
        if self.get(name, project=project, now=now) is None:
            return False
        del self._items[name]
        return True

    def list(self, *, project: str, now: float) -> list[CachedContent]:
        live = []
        for name in list(self._items):
            item = self.get(name, project=project, now=now)
            if item is not None:
                live.append(item)
        return live
