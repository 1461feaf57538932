"""What every SQLite-backed store shares: its URL, one connection per thread, transactions.

The quota ledger, the breaker snapshots and the response cache each keep their own
tables, but they open files the same way, so processes on one host agree on every
detail: WAL (readers never block the writer), a busy timeout (writers queue instead
of failing), `BEGIN IMMEDIATE` write transactions, and a schema created inside one
write transaction so processes opening a new file at once queue rather than race.
Driver errors leave as `StoreError`, naming the file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gemini_guard.errors import ConfigError, StoreError

__all__ = ["SQLiteFile", "path_from_url"]


def path_from_url(url: str, *, option: str = "store") -> Path:
    """The file a `sqlite:///relative`, `sqlite:////absolute` or `sqlite:///~/path` URL names.

    `option` is the setting the URL came from, for the error message.
    """
    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    if query:
        raise ConfigError(f"{option}={url!r}: a sqlite URL takes no options ('?{query}')")
    if not path.startswith("/") or path in {"/", "/:memory:"} or path.endswith("/"):
        raise ConfigError(
            f"{option}={url!r} names no database file; use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (for one process only, memory:// is faster)"
        )
    return Path(path[1:]).expanduser()


class SQLiteFile:
    """One SQLite file opened for a store: a connection per thread, set up once each.

    `schema`: statements (separated by ";") run in the first write transaction of each
    connection; `migrate` (optional) runs right after them, in the same transaction.
    `what` names the store in errors ("the SQLite cache /path/x.db is closed").
    """

    def __init__(
        self,
        path: str | Path,
        *,
        what: str,
        schema: str,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self._what = what
        self._schema = [s for s in schema.split(";") if s.strip()]
        self._migrate = migrate
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.connection()  # fail now, with a clear error, if the file is unusable
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self._what} {self.path}: {exc}") from exc

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened and set up on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        if self._closed:
            raise StoreError(f"{self._what} {self.path} is closed")
        db = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE
            check_same_thread=False,  # closed from close(), possibly in another thread
        )
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; fsync at checkpoints
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in self._schema:
                db.execute(statement)
            if self._migrate is not None:
                self._migrate(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._local.db = db
        with self._lock:
            self._connections.append(db)
        return db

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """A transaction on this thread's connection; rolled back if the block raises."""
        try:
            db = self.connection()
            db.execute(f"BEGIN {mode}")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self._what} {self.path} failed: {exc}") from exc

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read outside any transaction."""
        try:
            return list(self.connection().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"{self._what} {self.path} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()
