"""What every SQLite-backed store shares: its URL, one connection per thread, transactions.

The quota ledger, the breaker snapshots and the response cache each keep their own
tables, but they open files the same way, so processes on one host agree on every
detail: WAL (readers never block the writer), a busy timeout (writers queue instead
of failing), `BEGIN IMMEDIATE` write transactions, and a schema created inside one
write transaction so processes opening a new file at once queue rather than race (the
switch to WAL, which SQLite does not queue, is retried for as long as the busy timeout:
see `use_wal`).
Driver errors leave as `StoreError`, naming the file.

`synchronous` is each store's choice, after the promise it makes: NORMAL (the
default) keeps a WAL database consistent through a power cut and loses at most the
last commits, fine for counters and caches; the batch journal (its own file) uses
FULL because a paid-for answer must survive one.

A damaged file (not a SQLite database, or a corrupt page) is a `StoreError` naming the
file and the fix. With `?on_corrupt=reset` on the URL (or `on_corrupt="reset"`), a
file found damaged when it is opened is moved aside (`<file>.damaged-<n>`, kept for a
post-mortem) and a fresh one is started, with one warning.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from gemini_guard.errors import ConfigError, StoreDamaged, StoreError

__all__ = [
    "OnCorrupt",
    "SQLiteFile",
    "is_damage",
    "on_corrupt_from_url",
    "path_from_url",
    "use_wal",
]

_log = logging.getLogger("gemini_guard.store")

OnCorrupt = Literal["fail", "reset"]
_ON_CORRUPT = ("fail", "reset")
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _split(url: str, option: str) -> tuple[str, dict[str, str]]:
    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"on_corrupt"})
    if unknown:
        raise ConfigError(
            f"{option}={url!r}: a sqlite URL takes no options but ?on_corrupt=reset (move a "
            f"damaged file aside and start afresh); unknown: {', '.join(unknown)}"
        )
    value = options.get("on_corrupt", "fail")
    if value not in _ON_CORRUPT:
        raise ConfigError(f"{option}={url!r}: on_corrupt must be 'fail' or 'reset', not {value!r}")
    return path, options


def path_from_url(url: str, *, option: str = "store") -> Path:
    """The file a `sqlite:///relative`, `sqlite:////absolute` or `sqlite:///~/path` URL names.

    `option` is the setting the URL came from, for the error message.
    """
    path, _ = _split(url, option)
    if not path.startswith("/") or path in {"/", "/:memory:"} or path.endswith("/"):
        raise ConfigError(
            f"{option}={url!r} names no database file; use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (for one process only, memory:// is faster)"
        )
    return Path(path[1:]).expanduser()


def on_corrupt_from_url(url: str, *, option: str = "store") -> OnCorrupt:
    """The URL's `on_corrupt` option: "fail" (the default) or "reset"."""
    _, options = _split(url, option)
    return "reset" if options.get("on_corrupt") == "reset" else "fail"


def is_damage(exc: BaseException) -> bool:
    """Does this driver error mean a damaged file (not a database, corrupt), rather
    than a busy, full, read-only or missing one?"""
    # OperationalError (locked, full disk, read-only, I/O) and IntegrityError are
    # DatabaseErrors too; the plain DatabaseError is what SQLite's NOTADB and CORRUPT
    # codes become.
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.OperationalError | sqlite3.IntegrityError | sqlite3.ProgrammingError
    )


def use_wal(db: sqlite3.Connection, *, timeout: float) -> None:
    """Put `db`'s file in WAL mode, waiting up to `timeout` seconds for other processes.

    The switch reads the file's header, then upgrades that read to a write lock to
    change it. SQLite never calls the busy handler for such an upgrade (two processes
    upgrading at once would wait for each other forever), so when several processes
    open a new file at once, all but one get "database is locked" at once, whatever
    the busy timeout. Only the switch needs this: a file already in WAL mode answers
    without a write, and the schema's `BEGIN IMMEDIATE` takes its lock through the
    busy handler.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # the other opener holds the lock for a few ms at most
        pause = min(pause * 2, 0.05)


def _hint(exc: sqlite3.Error) -> str:
    """How to fix the usual operational failures, after their message."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return "; make the file, its -wal and -shm files and its directory writable by this process"
    if "full" in text:
        return "; free disk space (what was committed is kept)"
    if "locked" in text or "busy" in text:
        return "; another process holds a write transaction longer than the busy timeout"
    return ""


def _aside(path: Path) -> Path:
    """Move `path` (with its -wal and -shm files) to a fresh `<path>.damaged-<n>`."""
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.damaged-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


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
        synchronous: str = "NORMAL",
        on_corrupt: OnCorrupt = "fail",
        check: bool = True,
    ) -> None:
        """`check`: run SQLite's quick integrity check when the file is opened, so a
        corrupt page is found before any call relies on it (a few ms per MB)."""
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        if on_corrupt not in _ON_CORRUPT:
            raise ConfigError(f"on_corrupt must be 'fail' or 'reset', not {on_corrupt!r}")
        self.path = Path(path).expanduser()
        self._what = what
        self._schema = [s for s in schema.split(";") if s.strip()]
        self._migrate = migrate
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_checked(check)
        except sqlite3.Error as exc:
            self.close()
            if not is_damage(exc):
                raise StoreError(f"cannot open {self._what} {self.path}: {exc}") from None
            if on_corrupt != "reset":
                raise self._damaged(exc) from None
            self._reset(exc)
        except OSError as exc:
            self.close()
            raise StoreError(f"cannot open {self._what} {self.path}: {exc}") from None

    def _open_checked(self, check: bool) -> None:
        db = self.connection()  # fail now, with a clear error, if the file is unusable
        if check:
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")

    def _damaged(self, exc: BaseException) -> StoreError:
        return StoreDamaged(
            f"{self._what} {self.path} is damaged ({exc}): it is not a SQLite database or "
            f"has a corrupt page. Stop the processes using it and move it aside (mv "
            f"{self.path} {self.path}.damaged), or add ?on_corrupt=reset to the store URL "
            "to have it moved aside and started afresh when opened (what it held is lost: "
            "counters start from zero)"
        )

    def _reset(self, exc: BaseException) -> None:
        self._closed = False
        try:
            moved = _aside(self.path)
            self._open_checked(True)
        except (OSError, sqlite3.Error) as again:
            self.close()
            raise StoreError(
                f"{self._what} {self.path} is damaged ({exc}) and could not be reset: {again}"
            ) from None
        _log.warning(
            "%s %s was damaged (%s); moved aside to %s and started afresh (on_corrupt=reset)",
            self._what,
            self.path,
            exc,
            moved,
        )

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
        try:
            self._set_up(db)
        except BaseException:
            db.close()
            raise
        self._local.db = db
        with self._lock:
            self._connections.append(db)
        return db

    def _set_up(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        use_wal(db, timeout=self._busy_timeout)
        db.execute(f"PRAGMA synchronous = {self._synchronous}")  # see the module doc
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in self._schema:
                db.execute(statement)
            if self._migrate is not None:
                self._migrate(db)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

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
            raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        if is_damage(exc):
            return self._damaged(exc)
        return StoreError(f"{self._what} {self.path} failed: {exc}{_hint(exc)}")

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read outside any transaction."""
        try:
            return list(self.connection().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()
