"""Where events go: Python logging, a JSONL file, or any callable.

A sink is any `Callable[[Event], None]`. `Telemetry` fans an event out to its sinks,
scrubs secrets from every text field first (except for a sink whose `reads_text`
attribute is False), and never lets a failing sink break the call it observes. A sink
whose `per_attempt` attribute is False does not need the events every successful
call would build only for it (AttemptStarted, CallSucceeded): it learns of successes
from the `CallUsage` that closes each one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gemini_guard.secrets import REDACTED, redact, register_secret
from gemini_guard.telemetry.events import Event, FailureEvent

__all__ = ["JsonlSink", "LoggingSink", "Sink", "Telemetry"]

Sink = Callable[[Event], None]

_log = logging.getLogger("gemini_guard.telemetry")
_LOGGER, _RAW, _TEXT = 0, 1, 2


def _format_value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class LoggingSink:
    """One structured `key=value` line per event on a `logging.Logger`.

    Failures log at WARNING, everything else at INFO (or the levels given).
    """

    __slots__ = ("failure_level", "level", "logger")

    def __init__(
        self,
        logger: logging.Logger | str = "gemini_guard",
        *,
        level: int = logging.INFO,
        failure_level: int = logging.WARNING,
    ) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.failure_level = failure_level

    def enabled_for(self, event: Event) -> bool:
        """Would `event` be logged? (Cheap: the logging module caches the answer.)"""
        level = self.failure_level if isinstance(event, FailureEvent) else self.level
        return self.logger.isEnabledFor(level)

    def enabled(self) -> bool:
        """Would any event be logged?"""
        return self.logger.isEnabledFor(min(self.level, self.failure_level))

    def __call__(self, event: Event) -> None:
        level = self.failure_level if isinstance(event, FailureEvent) else self.level
        if not self.logger.isEnabledFor(level):
            return
        line = " ".join(f"{k}={_format_value(v)}" for k, v in event.to_dict().items())
        self.logger.log(level, "%s", line)


class JsonlSink:
    """Appends one JSON object per event to a file (created with its directory).

    The file is opened for each event: nothing is left open between calls, lines from
    several threads or processes never interleave (one short append each), and log
    rotation needs no signal.
    """

    __slots__ = ("_lock", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))
        with self._lock, self.path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


class Telemetry:
    """Sends each event to every sink, with secrets scrubbed from its text.

    `secrets`: exact strings (the API keys in use) to hide besides anything that
    looks like a key.
    """

    __slots__ = ("_plan", "_secrets", "_sinks")

    def __init__(self, sinks: Iterable[Sink] = (), *, secrets: Iterable[str] = ()) -> None:
        self.sinks = tuple(sinks)
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.add_secret(secret)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return self._sinks

    @sinks.setter
    def sinks(self, sinks: Iterable[Sink]) -> None:
        self._sinks: tuple[Sink, ...] = tuple(sinks)
        # Per sink, worked out once: a logger (asked per event whether it is on), a
        # sink that reads no free text (given the event as built: scrubbing costs
        # more than counting), or any other (given the scrubbed event).
        self._plan: tuple[tuple[Sink, int], ...] = tuple(
            (
                sink,
                _LOGGER
                if isinstance(sink, LoggingSink)
                else _RAW
                if getattr(sink, "reads_text", True) is False
                else _TEXT,
            )
            for sink in self._sinks
        )

    def add_secret(self, secret: str | None) -> None:
        # Very short strings are not secrets worth hiding, and replacing them would
        # garble every message ("k" as a test key).
        register_secret(secret)  # process-wide too: files and exceptions, not only events
        if secret and len(secret) >= 8 and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def _scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact(text)

    def scrub(self, event: Event) -> Event:
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            if isinstance(value, str):
                clean = self._scrub_text(value)
                if clean != value:
                    changes[f.name] = clean
        return dataclasses.replace(event, **changes) if changes else event

    def listening(self) -> bool:
        """Does any sink want the events of a successful call's path (AttemptStarted,
        CallSucceeded) now? When not, callers need not build them. A `LoggingSink`
        whose logger is off for its levels does not count, nor a sink whose
        `per_attempt` attribute is False (it counts successes from `CallUsage`)."""
        for sink, kind in self._plan:
            if kind == _LOGGER:
                if sink.enabled():  # type: ignore[attr-defined]
                    return True
            elif getattr(sink, "per_attempt", True):
                return True
        return False

    def emit(self, event: Event) -> None:
        clean: Event | None = None
        for sink, kind in self._plan:
            if kind == _RAW:
                given = event
            else:
                # Scrubbing costs more than most sinks: skip it when only disabled
                # loggers would receive the event.
                if kind == _LOGGER and not sink.enabled_for(event):  # type: ignore[attr-defined]
                    continue
                if clean is None:
                    clean = self.scrub(event)
                given = clean
            try:
                sink(given)
            except Exception:
                # Observing a call must never break it.
                _log.exception("telemetry sink %r failed on a %s event", sink, event.kind)

    def add_sink(self, sink: Sink) -> None:
        """Send events to `sink` too, from the next event on."""
        self.sinks = (*self.sinks, sink)
