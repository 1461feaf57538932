"""The gateway's live page, `/status`: the report of the recent past, redrawn.

The events of the last `keep` calls (a bounded ring, in memory, per process) are
analysed as `gemini-guard report` analyses a JSONL file, and drawn on the same
self-contained page (inline SVG, no external assets, readable on a phone), which
reloads itself every `refresh` seconds.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from gemini_guard.telemetry.events import Event
from gemini_guard.telemetry.report import analyse, render_html

__all__ = ["RecentEvents", "status_page"]


class RecentEvents:
    """A telemetry sink keeping the last `keep` events as report rows."""

    def __init__(self, keep: int = 20_000) -> None:
        self._rows: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        row = event.to_dict()
        with self._lock:
            self._rows.append(row)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows)


def status_page(events: RecentEvents, *, refresh: int = 10) -> str:
    """The live page: the report of `events`, reloading every `refresh` seconds."""
    page = render_html(analyse(events.rows()), title="gemini-guard gateway status")
    return page.replace("<head>", f'<head><meta http-equiv="refresh" content="{int(refresh)}">', 1)
