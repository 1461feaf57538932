"""The batch journal: each request's final state in SQLite, committed before its line
is written to the output.

Why a journal and not just the output file: an answer that has been paid for must not
be lost or paid for twice. The runner commits a result here first, then appends its
line to the output; `gemini_guard.batch.output.repair` closes the window between the
two after a crash (a torn last line is cut off, journaled results missing from the
output are appended). WAL mode with synchronous=NORMAL: a committed transaction
survives the process being killed at any instant.

Tables: `items(id, state, line)` with state "done" or "failed" and `line` the exact
output line; `meta(key, value)` for the run's settings (e.g. a Batch API job name).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from gemini_guard.batch.result import BatchResult
from gemini_guard.errors import StoreError

__all__ = ["Journal", "journal_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('done', 'failed')),
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def journal_path(output: str | Path) -> Path:
    """Where the journal of `output` lives: next to it, `<output>.journal.sqlite`."""
    output = Path(output)
    return output.with_name(output.name + ".journal.sqlite")


class Journal:
    """Final states of a batch's requests, one SQLite file, safe against `kill -9`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the batch journal {self.path}: {exc}; check the directory is "
                "writable, or delete the file to start the batch afresh"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- items ------------------------------------------------------------------------

    def record(self, result: BatchResult, line: str | None = None) -> None:
        """Commit `result` (its output `line`, computed if not given) as final."""
        text = line if line is not None else result.to_line()
        self._db.execute(
            "INSERT OR REPLACE INTO items (id, state, line) VALUES (?, ?, ?)",
            (result.id, "done" if result.ok else "failed", text),
        )

    def record_many(self, items: Iterable[tuple[BatchResult, str]]) -> None:
        """Commit several results in one transaction."""
        rows = [(r.id, "done" if r.ok else "failed", line) for r, line in items]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO items (id, state, line) VALUES (?, ?, ?)", rows
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def states(self) -> dict[str, str]:
        """Every journaled id and its state ("done" or "failed")."""
        return dict(self._db.execute("SELECT id, state FROM items").fetchall())

    def lines(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        """The journaled output line of each of `ids` (all when None)."""
        if ids is None:
            return dict(self._db.execute("SELECT id, line FROM items").fetchall())
        out: dict[str, str] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                self._db.execute(
                    f"SELECT id, line FROM items WHERE id IN ({marks})", chunk
                ).fetchall()
            )
        return out

    def forget(self, ids: Iterable[str]) -> None:
        """Drop `ids` (e.g. failed ones to retry) so they run again."""
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
        self._db.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
