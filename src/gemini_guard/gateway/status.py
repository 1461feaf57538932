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

from gemini_guard.secrets import redacted
from gemini_guard.telemetry.events import Event
from gemini_guard.telemetry.report import analyse, render_html

__all__ = ["RecentEvents", "status_page"]


class RecentEvents:
    """A telemetry sink keeping the last `keep` events, made into report rows when
    the page is drawn.

    Every call of the gateway passes here, and the page is drawn now and then: the
    events are kept as they come (`reads_text = False`: not scrubbed on the way in),
    and their rows are built, secrets redacted, only for a page."""

    reads_text = False

    def __init__(self, keep: int = 20_000) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        self._events.append(event)  # deque.append is atomic: no lock on the way in

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:  # one drawer at a time; a copy taken while events still arrive
            events = list(self._events)
        return [redacted(event.to_dict()) for event in events]


def status_page(events: RecentEvents, *, refresh: int = 10) -> str:
    """The live page: the report of `events`, reloading every `refresh` seconds."""
    page = render_html(analyse(events.rows()), title="gemini-guard gateway status")
    return page.replace("<head>", f'<head><meta http-equiv="refresh" content="{int(refresh)}">', 1)
