"""`sqlite:///path`: cached responses in a SQLite file, shared by one host's processes.

Recency is a counter (`used`) rather than a time, so entries written within the same
clock tick (a `FakeClock` that has not moved) still have a strict order. Each write
is one `BEGIN IMMEDIATE` transaction, so the count-then-evict step of a `put` cannot
race another process's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gemini_guard.errors import ConfigError, StoreError

__all__ = ["SQLiteCacheStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS response_cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL,
    used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS response_cache_by_use ON response_cache (used);
"""

_NEXT_USE = "(SELECT COALESCE(MAX(used), 0) + 1 FROM response_cache)"


class SQLiteCacheStore:
    """One table in one SQLite file; one connection per thread."""

    local = False

    def __init__(
        self, path: str | Path, *, max_entries: int = 10_000, busy_timeout: float = 10.0
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._path = Path(path).expanduser()
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._connection()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite cache {self._path}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, *, max_entries: int = 10_000) -> SQLiteCacheStore:
        """`sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite:///~/path`."""
        rest = url.split("://", 1)[1]
        path, _, query = rest.partition("?")
        if query:
            raise ConfigError(f"cache={url!r}: a sqlite URL takes no options ('?{query}')")
        if not path.startswith("/") or path in {"/", "/:memory:"} or path.endswith("/"):
            raise ConfigError(
                f"cache={url!r} names no database file; use sqlite:///relative/cache.db or "
                "sqlite:////absolute/cache.db (for one process only, memory:// is faster)"
            )
        return cls(Path(path[1:]), max_entries=max_entries)

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteCacheStore({str(self._path)!r}, max_entries={self.max_entries})"

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        if self._closed:
            raise StoreError(f"the SQLite cache {self._path} is closed")
        db = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # explicit BEGIN IMMEDIATE below
            check_same_thread=False,  # closed from close(), possibly another thread
        )
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
        self._local.db = db
        with self._lock:
            self._connections.append(db)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"the SQLite cache {self._path} failed: {exc}") from exc

    def get(self, key: str, *, now: float) -> bytes | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT value, expires_at FROM response_cache WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            if row[1] <= now:
                db.execute("DELETE FROM response_cache WHERE key = ?", (key,))
                return None
            db.execute(f"UPDATE response_cache SET used = {_NEXT_USE} WHERE key = ?", (key,))
            return bytes(row[0])

    def put(self, key: str, value: bytes, *, now: float, ttl: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO response_cache (key, value, expires_at, used) "
                f"VALUES (?, ?, ?, {_NEXT_USE})",
                (key, value, now + ttl),
            )
            (count,) = db.execute("SELECT COUNT(*) FROM response_cache").fetchone()
            if count > self.max_entries:
                db.execute(
                    "DELETE FROM response_cache WHERE key IN "
                    "(SELECT key FROM response_cache ORDER BY used LIMIT ?)",
                    (count - self.max_entries,),
                )

    def delete(self, key: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM response_cache WHERE key = ?", (key,)).rowcount > 0

    def clear(self, prefix: str = "") -> int:
        with self._transaction() as db:
            # substr, not LIKE: a project name may hold % or _.
            cursor = db.execute(
                "DELETE FROM response_cache WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            )
            return cursor.rowcount

    def count(self) -> int:
        try:
            (count,) = self._connection().execute("SELECT COUNT(*) FROM response_cache").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"the SQLite cache {self._path} failed: {exc}") from exc
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
