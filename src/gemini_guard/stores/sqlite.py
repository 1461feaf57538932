"""What every SQLite-backed store shares: one open file per path, a connection per thread.

The quota ledger, the learned levels, the breaker snapshots and the response cache
each keep their own tables, but they open files the same way, so processes on one
host agree on every detail: WAL (readers never block the writer), a busy timeout
(writers queue instead of failing), `BEGIN IMMEDIATE` write transactions, and a
schema created inside one write transaction so processes opening a new file at once
queue rather than race (the switch to WAL, which SQLite does not queue, is retried for
as long as the busy timeout: see `use_wal`).
Driver errors leave as `StoreError`, naming the file.

Within a process, stores on one path share one open file (`SQLiteFile` is a store's
handle on it): the integrity check runs once, each thread has one connection for all
of them, and the last handle closed closes the connections. Each store's statements
are short transactions that call no other store, so sharing a thread's connection
never nests one store's transaction in another's.

`synchronous` is each store's choice, after the promise it makes: NORMAL (the
default) keeps a WAL database consistent through a power cut and loses at most the
last commits, fine for counters and caches; the batch journal (its own file) uses
FULL because a paid-for answer must survive one.

A damaged file (not a SQLite database, or a corrupt page) is a `StoreError` naming the
file and the fix. With `?on_corrupt=reset` on the URL (or `on_corrupt="reset"`), a
file found damaged when this process first opens it is moved aside (`<file>.damaged-<n>`, kept for a
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
from typing import Any

from gemini_guard.errors import ConfigError, StoreDamaged, StoreError
from gemini_guard.stores.url import OnCorrupt

__all__ = ["SQLiteFile", "is_damage", "use_wal"]

_log = logging.getLogger("gemini_guard.store")

_ON_CORRUPT = ("fail", "reset")
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


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


class _OpenFile:
    """One SQLite file open in this process: its settings and a connection per thread."""

    def __init__(self, path: Path, *, busy_timeout: float, synchronous: str) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.handles = 0  # guarded by _files_lock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def open(self, *, what: str, on_corrupt: OnCorrupt, check: bool) -> None:
        """Open the file, checked; a damaged one is refused or moved aside (`on_corrupt`)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_checked(check)
        except sqlite3.Error as exc:
            self.close()
            if not is_damage(exc):
                raise StoreError(f"cannot open {what} {self.path}: {exc}") from None
            if on_corrupt != "reset":
                raise _damaged(what, self.path, exc) from None
            self._reset(what, exc)
        except OSError as exc:
            self.close()
            raise StoreError(f"cannot open {what} {self.path}: {exc}") from None

    def _open_checked(self, check: bool) -> None:
        db = self.connection()  # fail now, with a clear error, if the file is unusable
        if db is not None and check:
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")

    def healthy(self) -> bool:
        """Does the file still pass the quick check (every store checks at its open)?"""
        try:
            self._open_checked(True)
        except sqlite3.Error as exc:
            return not is_damage(exc)
        return True

    def _reset(self, what: str, exc: BaseException) -> None:
        self._closed = False
        try:
            moved = _aside(self.path)
            self._open_checked(True)
        except (OSError, sqlite3.Error) as again:
            self.close()
            raise StoreError(
                f"{what} {self.path} is damaged ({exc}) and could not be reset: {again}"
            ) from None
        _log.warning(
            "%s %s was damaged (%s); moved aside to %s and started afresh (on_corrupt=reset)",
            what,
            self.path,
            exc,
            moved,
        )

    def connection(self) -> sqlite3.Connection | None:
        """This thread's connection, opened and set up on first use; None once closed."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None or self._closed:
            return db
        db = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE
            check_same_thread=False,  # closed from close(), possibly in another thread
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            use_wal(db, timeout=self.busy_timeout)
            db.execute(f"PRAGMA synchronous = {self.synchronous}")  # see the module doc
        except BaseException:
            db.close()
            raise
        self._local.db = db
        with self._lock:
            self._connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()


# The files open in this process, by absolute path; a forked child opens its own.
_files: dict[tuple[int, str], _OpenFile] = {}
_files_lock = threading.Lock()


def _open_file(
    path: Path,
    *,
    what: str,
    busy_timeout: float,
    synchronous: str,
    on_corrupt: OnCorrupt,
    check: bool,
) -> _OpenFile:
    name = (os.getpid(), os.path.abspath(path))
    with _files_lock:
        shared = _files.get(name)
        if shared is not None and check and not shared.healthy():
            # Damaged since it was opened: this opener starts over as a first one would
            # (refused, or moved aside with on_corrupt=reset); the handles already open
            # keep theirs.
            del _files[name]
            shared = None
        if shared is None:
            shared = _OpenFile(path, busy_timeout=busy_timeout, synchronous=synchronous)
            # Opened under the lock: a second store on the path waits for the check
            # (or the reset) rather than racing it.
            shared.open(what=what, on_corrupt=on_corrupt, check=check)
            _files[name] = shared
        elif (shared.busy_timeout, shared.synchronous) != (busy_timeout, synchronous):
            raise ConfigError(
                f"{what} {path} is already open in this process with busy_timeout="
                f"{shared.busy_timeout:g} and synchronous={shared.synchronous}; open every "
                "store on one file with the same settings"
            )
        shared.handles += 1
        return shared


def _forget(shared: _OpenFile) -> None:
    """`shared` was found damaged: the next opener of its path opens it afresh."""
    with _files_lock:
        for name, held in list(_files.items()):
            if held is shared:
                del _files[name]


def _release(shared: _OpenFile) -> None:
    with _files_lock:
        shared.handles -= 1
        if shared.handles > 0:
            return
        for name, held in list(_files.items()):
            if held is shared:
                del _files[name]
    shared.close()


def _damaged(what: str, path: Path, exc: BaseException) -> StoreError:
    return StoreDamaged(
        f"{what} {path} is damaged ({exc}): it is not a SQLite database or "
        f"has a corrupt page. Stop the processes using it and move it aside (mv "
        f"{path} {path}.damaged), or add ?on_corrupt=reset to the store URL "
        "to have it moved aside and started afresh when opened (what it held is lost: "
        "counters start from zero)"
    )


class SQLiteFile:
    """A store's handle on a SQLite file: its tables made, its errors named after it.

    `schema`: statements (separated by ";") run in one write transaction when the
    handle is opened; `migrate` (optional) runs right after them, in the same
    transaction. `what` names the store in errors ("the SQLite cache /path/x.db is
    closed"). Handles on one path share the open file (see the module docstring).
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
        """`check`: run SQLite's quick integrity check when the file is first opened,
        so a corrupt page is found before any call relies on it (a few ms per MB)."""
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        if on_corrupt not in _ON_CORRUPT:
            raise ConfigError(f"on_corrupt must be 'fail' or 'reset', not {on_corrupt!r}")
        self.path = Path(path).expanduser()
        self._what = what
        self._closed = False
        self._file = _open_file(
            self.path,
            what=what,
            busy_timeout=busy_timeout,
            synchronous=synchronous.upper(),
            on_corrupt=on_corrupt,
            check=check,
        )
        try:
            self._create([s for s in schema.split(";") if s.strip()], migrate)
        except BaseException:
            self.close()
            raise

    def _create(
        self, schema: list[str], migrate: Callable[[sqlite3.Connection], None] | None
    ) -> None:
        # One write transaction: processes opening a new file at once queue on its
        # lock rather than race to create the tables.
        try:
            db = self.connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in schema:
                    db.execute(statement)
                if migrate is not None:
                    migrate(db)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if is_damage(exc):
                raise _damaged(self._what, self.path, exc) from None
            raise StoreError(f"cannot open {self._what} {self.path}: {exc}") from None

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened and set up on first use."""
        db = None if self._closed else self._file.connection()
        if db is None:
            raise StoreError(f"{self._what} {self.path} is closed")
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
            raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        if is_damage(exc):
            _forget(self._file)
            return _damaged(self._what, self.path, exc)
        return StoreError(f"{self._what} {self.path} failed: {exc}{_hint(exc)}")

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read outside any transaction."""
        try:
            return list(self.connection().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        """Give the handle back; the last one on the path closes the file."""
        if self._closed:
            return
        self._closed = True
        _release(self._file)
