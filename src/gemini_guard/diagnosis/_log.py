"""Every distinct error in a log, with how often it occurs.

`diagnose()` answers one question: what is this failure (for a log, the last one).
A log often holds several different failures (a 429 burst, then a 503, then a bad
key); `diagnose_log` finds each error in the text (every embedded error body with the
status line in front of it, and every other line that names a status, a gRPC code or
a transport failure), diagnoses each, and groups equal diagnoses, in order of first
appearance. Text beyond `MAX_LOG_CHARS` is not read, and the report says so.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from gemini_guard.diagnosis._diagnose import diagnose
from gemini_guard.diagnosis._model import Category, Diagnosis
from gemini_guard.diagnosis._response import looks_like_response
from gemini_guard.diagnosis._text import BODY_START, MAX_TEXT, balanced_end, evidence_from_text

__all__ = ["MAX_LOG_CHARS", "LogEntry", "LogReport", "diagnose_log"]

MAX_LOG_CHARS = MAX_TEXT
_MAX_SEGMENTS = 100_000
# A line worth a look on its own: an error status, a gRPC name, a failure word.
_HINT = re.compile(
    r"\b[45]\d\d\b|\b[A-Z]{3,}_[A-Z_]{3,}\b|(?i:error|exception|fail|timeout|timed out|refused|"
    r"reset|exhausted|overloaded|unavailable|denied|invalid|quota|cancel)"
)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One distinct error: its diagnosis (the last occurrence's) and how many times it occurs."""

    diagnosis: Diagnosis
    count: int
    first_line: int  # 1-based line of its first occurrence


@dataclass(frozen=True, slots=True)
class LogReport:
    """The distinct errors of a text, and how much of the text was read."""

    entries: tuple[LogEntry, ...]
    chars_read: int
    chars_total: int

    @property
    def truncated(self) -> bool:
        """True when the text was longer than `MAX_LOG_CHARS` and only its end was read."""
        return self.chars_read < self.chars_total


def _key(d: Diagnosis) -> tuple[object, ...]:
    # The delay and the exact wording differ between occurrences of one error.
    q = d.quota
    quota = (q.scope, q.unit, q.tier, q.limit, q.model) if q is not None else None
    return (d.category, d.http_status, d.grpc_status, d.reason, quota)


def _segments(text: str) -> list[tuple[int, str]]:
    """(offset, piece) for each error-looking piece of `text`, in order."""
    pieces: list[tuple[int, str]] = []
    covered: list[tuple[int, int]] = []
    position = 0
    for match in BODY_START.finditer(text):
        start = match.start()
        if start < position:
            continue
        end = balanced_end(text, start)
        if end is None:
            continue
        line_start = text.rfind("\n", 0, start) + 1
        piece = text[max(line_start, covered[-1][1] if covered else 0) : end]
        if evidence_from_text(piece).body is None:
            continue
        pieces.append((line_start, piece))
        covered.append((line_start, end))
        position = end
        if len(pieces) >= _MAX_SEGMENTS:
            break
    gaps: list[tuple[int, int]] = []
    cursor = 0
    for begin, end in covered:
        gaps.append((cursor, begin))
        cursor = max(cursor, end)
    gaps.append((cursor, len(text)))
    for begin, end in gaps:
        offset = begin
        for line in text[begin:end].splitlines(keepends=True):
            if line.strip() and _HINT.search(line):
                pieces.append((offset, line.strip()))
            offset += len(line)
    pieces.sort(key=lambda item: item[0])
    return pieces


def diagnose_log(text: str, *, max_chars: int = MAX_LOG_CHARS) -> LogReport:
    """Each distinct error in `text` with its count; never raises.

    A text with no recognisable error gives one entry: `diagnose(text)` (usually
    `unknown`), so a caller always has something to show. Of a text longer than
    `max_chars`, only the end is read (`LogReport.truncated` says so).
    """
    total = len(text)
    if total > max_chars:
        text = text[-max_chars:]
    if looks_like_response(text):  # a saved response: what is wrong with it, if anything
        return LogReport((LogEntry(diagnose(text), 1, 1),), len(text), total)
    try:
        found: dict[tuple[object, ...], tuple[Diagnosis, int, int]] = {}
        newlines = [m.start() for m in re.finditer("\n", text)]
        for offset, piece in _segments(text):
            d = diagnose(piece)
            if d.category in (Category.UNKNOWN, Category.NO_PROBLEM):
                continue
            key = _key(d)
            line = bisect.bisect_left(newlines, offset) + 1
            _, count, first = found.get(key, (d, 0, line))
            found[key] = (d, count + 1, first)
        ordered = sorted(found.values(), key=lambda v: v[2])
        entries = tuple(LogEntry(d, count, first) for d, count, first in ordered)
    except Exception:  # the contract is "never raises"
        entries = ()
    if not entries:
        entries = (LogEntry(diagnose(text), 1, 1),)
    return LogReport(entries=entries, chars_read=len(text), chars_total=total)
