"""`sqlite:///path`: cached responses in a SQLite file, shared by one host's processes.

Recency is a counter (`used`) rather than a time, so entries written within the same
clock tick (a `FakeClock` that has not moved) still have a strict order. Each write
is one `BEGIN IMMEDIATE` transaction, so the count-then-evict step of a `put` cannot
race another process's.

Credentials the API accepted or refused live in `cache_credentials` (an HMAC digest,
never a key); a `get` given one reads its record and the entry in one transaction.
The HMAC secret is a row of `cache_meta`, made by whichever process asks first.

Counters (`add_stats`) live in `cache_stats`, one row per (label, counter name),
so a counter added by a later version needs no migration. NUMERIC keeps integer
counters integers and dollar amounts reals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gemini_guard.errors import ConfigError
from gemini_guard.stores.sqlite import SQLiteFile
from gemini_guard.stores.url import OnCorrupt, StoreUrl, sqlite_file_of

__all__ = ["SQLiteCacheStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS response_cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL,
    used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS response_cache_by_use ON response_cache (used);
CREATE TABLE IF NOT EXISTS cache_stats (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    value NUMERIC NOT NULL,
    PRIMARY KEY (project, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_credentials (
    credential TEXT PRIMARY KEY,
    accepted INTEGER NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"""

_NEXT_USE = "(SELECT COALESCE(MAX(used), 0) + 1 FROM response_cache)"


class SQLiteCacheStore:
    """One table in one SQLite file; one connection per thread."""

    local = False

    def __init__(
        self,
        path: str | Path,
        *,
        max_entries: int = 10_000,
        busy_timeout: float = 10.0,
        on_corrupt: OnCorrupt = "fail",
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        # NORMAL: a power cut may lose the last entries, never the file's consistency;
        # a cache promises no more (see docs/reliability.md).
        self._file = SQLiteFile(
            path,
            what="the SQLite cache",
            schema=_SCHEMA,
            busy_timeout=busy_timeout,
            synchronous="NORMAL",
            on_corrupt=on_corrupt,
        )
        self._transaction = self._file.transaction

    @classmethod
    def from_url(cls, url: str | StoreUrl, *, max_entries: int = 10_000) -> SQLiteCacheStore:
        """`sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite:///~/path`."""
        path, on_corrupt = sqlite_file_of(url, option="cache")
        return cls(path, max_entries=max_entries, on_corrupt=on_corrupt)

    @property
    def path(self) -> Path:
        return self._file.path

    def __repr__(self) -> str:
        return f"SQLiteCacheStore({str(self.path)!r}, max_entries={self.max_entries})"

    def get(self, key: str, *, now: float, credential: str | None = None) -> bytes | None:
        with self._transaction() as db:
            if credential is not None:
                vouched = db.execute(
                    "SELECT 1 FROM cache_credentials "
                    "WHERE credential = ? AND accepted = 1 AND until > ?",
                    (credential, now),
                ).fetchone()
                if vouched is None:
                    return None
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

    def record_credential(self, credential: str, *, accepted: bool, now: float, ttl: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache_credentials (credential, accepted, until) "
                "VALUES (?, ?, ?)",
                (credential, int(accepted), now + ttl),
            )
            # Expired records say nothing more than no record at all.
            db.execute("DELETE FROM cache_credentials WHERE until <= ?", (now,))

    def secret(self) -> bytes:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO cache_meta (name, value) VALUES ('secret', ?)",
                (os.urandom(32),),
            )
            ((value,),) = db.execute("SELECT value FROM cache_meta WHERE name = 'secret'")
            return bytes(value)

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
        ((count,),) = self._file.read("SELECT COUNT(*) FROM response_cache")
        return int(count)

    def add_stats(self, project: str, deltas: Mapping[str, float]) -> None:
        rows = [(project, name, delta) for name, delta in deltas.items() if delta]
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO cache_stats (project, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (project, name) DO UPDATE SET value = value + excluded.value",
                rows,
            )

    def read_stats(self) -> dict[str, dict[str, float]]:
        stats: dict[str, dict[str, float]] = {}
        for project, name, value in self._file.read(
            "SELECT project, name, value FROM cache_stats ORDER BY project, name"
        ):
            stats.setdefault(project, {})[name] = value
        return stats

    def close(self) -> None:
        self._file.close()
