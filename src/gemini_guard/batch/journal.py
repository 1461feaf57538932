"""The batch journal: each request's final state in SQLite, committed before its line
is written to the output.

Why a journal and not just the output file: an answer that has been paid for must not
be lost or paid for twice. The runner commits a result here first, then appends its
line to the output; `gemini_guard.batch.output.repair` closes the window between the
two after a crash (a torn last line is cut off, journaled results missing from the
output are appended). WAL mode with synchronous=FULL: a committed transaction survives
the process being killed at any instant and, since each commit is fsynced, a power cut
too (a result that was paid for is never forgotten; NORMAL could lose the last ones).

Opening a journal takes the run lock of its output (`batch.lock`): a second run on the
same output is refused at once instead of sending every request again.

Tables: `items(id, state, line)` with state "done" or "failed" and `line` the exact
output line; `meta(key, value)` for the run's settings (e.g. a Batch API job name).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from gemini_guard.batch.lock import RunLock, lock_path
from gemini_guard.batch.result import BatchResult
from gemini_guard.errors import StoreError
from gemini_guard.stores.sqlite import use_wal

__all__ = ["Journal", "journal_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('done', 'failed')),
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_SUFFIX = ".journal.sqlite"


def journal_path(output: str | Path) -> Path:
    """Where the journal of `output` lives: next to it, `<output>.journal.sqlite`."""
    output = Path(output)
    return output.with_name(output.name + _SUFFIX)


def _lock_of(journal: Path) -> Path:
    """The run lock a journal is opened under: its output's (`<output>.lock`)."""
    if journal.name.endswith(_SUFFIX) and len(journal.name) > len(_SUFFIX):
        return lock_path(journal.with_name(journal.name[: -len(_SUFFIX)]))
    return lock_path(journal)


def _damaged(path: Path, exc: sqlite3.Error) -> StoreError:
    """The error for a journal SQLite cannot use, with how to go on."""
    return StoreError(
        f"the batch journal {path} is damaged or not a journal ({exc}). The output file "
        "still holds every finished result: move the journal aside (mv "
        f"{path} {path}.damaged) and run the same command again; it rebuilds the journal "
        "from the output and runs only what has no line yet"
    )


class Journal:
    """Final states of a batch's requests, one SQLite file, safe against `kill -9`."""

    def __init__(self, path: str | Path, *, lock: bool = True) -> None:
        """Open (or create) the journal at `path`, first taking its output's run lock
        (raises `OutputLocked` naming the run that holds it). `lock=False` only for
        read-only inspection by a process that knows no run can start."""
        self.path = Path(path)
        self._lock = RunLock.acquire(_lock_of(self.path)) if lock else None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._release()
            raise StoreError(
                f"cannot open the batch journal {self.path}: {exc}; check the directory "
                "exists and is writable"
            ) from None
        try:
            self._db.execute("PRAGMA busy_timeout=5000")
            use_wal(self._db, timeout=5.0)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            # A damaged page may sit anywhere; find it now, not after requests were sent.
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else '?'}")
        except sqlite3.Error as exc:
            self._db.close()
            self._release()
            raise self._failure(exc, "open") from None

    def _failure(self, exc: sqlite3.Error, doing: str) -> StoreError:
        # OperationalError (full disk, read-only file, I/O error) is a DatabaseError too;
        # only the plain DatabaseError and CorruptionError kinds mean a damaged file.
        if not isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError) and isinstance(
            exc, sqlite3.DatabaseError
        ):
            return _damaged(self.path, exc)
        return StoreError(
            f"cannot {doing} the batch journal {self.path}: {exc}. Every result committed "
            "before is kept; fix the cause (disk space, permissions) and run the same "
            "command again to resume"
        )

    @contextmanager
    def _guarded(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._failure(exc, doing) from None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def close(self) -> None:
        self._db.close()
        self._release()

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
        with self._guarded("write to"):
            text = line if line is not None else result.to_line()
            self._db.execute(
                "INSERT OR REPLACE INTO items (id, state, line) VALUES (?, ?, ?)",
                (result.id, "done" if result.ok else "failed", text),
            )

    def record_many(self, items: Iterable[tuple[BatchResult, str]]) -> None:
        """Commit several results in one transaction."""
        with self._guarded("write to"):
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
        with self._guarded("read"):
            return dict(self._db.execute("SELECT id, state FROM items").fetchall())

    def lines(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        """The journaled output line of each of `ids` (all when None)."""
        with self._guarded("read"):
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
        with self._guarded("write to"):
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        with self._guarded("read"):
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set(self, key: str, value: str | None) -> None:
        with self._guarded("write to"):
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                )
