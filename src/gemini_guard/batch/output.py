"""The output file: one JSON line per request, appended; repaired from the journal.

Appending is the only write during a run, one `write` per line. After a crash the
file may end in a torn line (the process died mid-write) or lack lines whose results
the journal already holds (it died between the commit and the write). `repair` makes
the file agree with the journal: exactly one line per journaled id, nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gemini_guard.batch.journal import Journal
from gemini_guard.batch.result import BatchResult
from gemini_guard.errors import StoreError

__all__ = ["OutputWriter", "RepairReport", "repair"]


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What `repair` changed in the output file."""

    torn_bytes: int = 0  # an incomplete last line cut off
    dropped: int = 0  # lines removed (asked to, unreadable or repeated)
    adopted: int = 0  # complete lines the journal did not know (it learned them)
    appended: int = 0  # journaled results that were missing from the file

    @property
    def changed(self) -> bool:
        return bool(self.torn_bytes or self.dropped or self.adopted or self.appended)


def _id_of(line: bytes) -> str | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("id"), str) and "ok" in raw:
        return str(raw["id"])
    return None


def _replace(path: Path, lines: Iterable[bytes]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        for line in lines:
            handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _unwritable(path: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot write the batch output {path}: {exc.strerror or exc}. Every finished "
        "result is in the journal; free disk space (or fix permissions) and run the same "
        "command again: it writes the missing lines and sends nothing twice"
    )


def repair(path: str | Path, journal: Journal, *, drop: Iterable[str] = ()) -> RepairReport:
    """Make `path` hold exactly one line per journaled id (and per id it already had).

    `drop`: ids whose lines must go (their requests are about to run again); the
    caller then removes them from the journal, in that order, so that a crash in
    between only brings the old lines back. A full disk or an unwritable file raises
    `StoreError` saying so.
    """
    path = Path(path)
    try:
        return _repair(path, journal, set(drop))
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _repair(path: Path, journal: Journal, dropping: set[str]) -> RepairReport:
    data = path.read_bytes() if path.exists() else b""
    end = data.rfind(b"\n") + 1
    torn = len(data) - end
    kept: list[bytes] = []
    seen: set[str] = set()
    dropped = 0
    for raw in data[:end].splitlines(keepends=True):
        ident = _id_of(raw)
        if ident is None or ident in seen or ident in dropping:
            dropped += 1
            continue
        seen.add(ident)
        kept.append(raw)
    if dropped:
        _replace(path, kept)
    elif torn:
        with path.open("r+b") as handle:
            handle.truncate(end)
            os.fsync(handle.fileno())
    elif not path.exists():
        path.touch()
    states = journal.states()
    adopt = [
        (BatchResult.from_json(json.loads(line)), line.decode("utf-8"))
        for line in kept
        if (ident := _id_of(line)) is not None and ident not in states
    ]
    if adopt:
        journal.record_many(adopt)
    missing = [i for i in states if i not in seen and i not in dropping]
    if missing:
        lines = journal.lines(missing)
        with path.open("ab") as handle:
            for ident in missing:
                handle.write(lines[ident].encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
    return RepairReport(torn_bytes=torn, dropped=dropped, adopted=len(adopt), appended=len(missing))


class OutputWriter:
    """Appends whole lines to the output, one `write` each (no buffering to tear)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _unwritable(self.path, exc) from None

    def write(self, line: str) -> None:
        """Append `line`; a full disk raises `StoreError` (the line is in the journal,
        and the next run's repair appends it)."""
        data = line.encode("utf-8")
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError as exc:
            raise _unwritable(self.path, exc) from None

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.fsync(fd)
            except OSError:
                pass  # what was written is journaled; the close must not mask the cause
            finally:
                os.close(fd)
