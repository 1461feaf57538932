"""Where learned limits are kept, so every process using a project paces by them.

Gemini's limits are per project: what one process learns from a 429 (see
`adaptive`) holds for every process and host using that project. A `LevelStore`
keeps one `Level` per (project, model, metric) beside the quota ledger, in the
store the ledger uses:

- `memory://`: a table attached to the `MemoryStore` object (limiters sharing that
  object share it);
- `sqlite:///path`: the table `quota_levels` in the ledger's file;
- `redis://...`: one hash per ledger, `gg:{project:model}:levels` (the ledger's hash
  tag, so it lives on the ledger's Redis Cluster node), a field per metric, the key
  expiring `TTL` real seconds after its last write.

`update(key, metric, change)` runs the pure `change` on the stored level and writes
its answer atomically (a lock; `BEGIN IMMEDIATE`; `WATCH`/`MULTI`/`EXEC`, `change`
run again when another client wrote in between), and writes nothing when the answer
is the level it was given. So two processes learning at once merge by the rules of
`adaptive`, never by whichever write lands last.

A level expires `TTL` seconds of the callers' clock after its last write (every
store keeps the expiry with the level and ignores it once past; SQLite deletes such
rows as it writes, Redis keys carry a TTL, memory is bounded), which bounds what is
kept to the ledgers that still learn. Driver failures leave as `StoreError`; a Redis
that does not answer is not asked again for `retry_after` seconds (the pause of
`stores.outage`, always "degrade": the ledger's `on_outage` says whether to fail), so
its callers fall back to their own view at once instead of waiting on a socket
timeout at every call. The Redis connection pool and the SQLite file are the ones
the ledger opened on the same URL (`stores.backend`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.quota.events import Metric
from gemini_guard.quota.stores.base import QuotaKey, QuotaStore
from gemini_guard.stores.backend import RedisBackend
from gemini_guard.stores.outage import Outage
from gemini_guard.stores.sqlite import SQLiteFile
from gemini_guard.stores.url import (
    CONNECT_TIMEOUT,
    RETRY_AFTER,
    SOCKET_TIMEOUT,
    OnCorrupt,
    StoreUrl,
    parse_store_url,
    sqlite_file_of,
    with_options,
)

__all__ = [
    "TTL",
    "Change",
    "Level",
    "LevelStore",
    "MemoryLevelStore",
    "RedisLevelStore",
    "SQLiteLevelStore",
    "open_level_store",
]

TTL = 86_400.0  # seconds a level outlives its last write
_METRICS: tuple[Metric, ...] = ("rpm", "tpm", "rpd", "tpd")
_MAX_RACES = 100  # WATCH conflicts in a row before giving up


@dataclass(frozen=True, slots=True)
class Level:
    """What was learned about one metric of one ledger.

    Times are seconds on the clock its learner paces by: wall-clock seconds when
    shared (the only clock processes and hosts have in common, as for the ledger).
    """

    effective: int  # the limit paced by (before recovery due since last_change)
    stated: int | None  # the server's quotaValue, when it gave one
    last_change: float  # the last cut, statement or recovery step
    last_cut: float  # the last cut or statement


Change = Callable[[Level | None], Level | None]


class LevelStore(Protocol):
    """Levels shared by every process that opens the same store."""

    @property
    def url(self) -> str:
        """Where the levels live, without credentials."""
        ...

    def load(
        self, keys: Collection[QuotaKey], *, at: float
    ) -> dict[tuple[QuotaKey, Metric], Level]:
        """The live levels of `keys` at wall time `at` (one round trip)."""
        ...

    def update(self, key: QuotaKey, metric: Metric, change: Change, *, at: float) -> Level | None:
        """Apply `change` to the stored level atomically; the level now stored."""
        ...

    def close(self) -> None: ...


# -- memory -------------------------------------------------------------------------


class MemoryLevelStore:
    """Levels in a dict, for the limiters of one process sharing one `MemoryStore`."""

    def __init__(self, *, max_levels: int = 40_000) -> None:
        self._levels: dict[tuple[QuotaKey, Metric], tuple[Level, float]] = {}
        self._lock = threading.Lock()
        self._max_levels = max_levels

    @property
    def url(self) -> str:
        return "memory://"

    def __repr__(self) -> str:
        return "MemoryLevelStore()"

    def load(
        self, keys: Collection[QuotaKey], *, at: float
    ) -> dict[tuple[QuotaKey, Metric], Level]:
        found: dict[tuple[QuotaKey, Metric], Level] = {}
        with self._lock:
            for key in keys:
                for metric in _METRICS:
                    held = self._levels.get((key, metric))
                    if held is not None and held[1] > at:
                        found[(key, metric)] = held[0]
        return found

    def update(self, key: QuotaKey, metric: Metric, change: Change, *, at: float) -> Level | None:
        with self._lock:
            held = self._levels.get((key, metric))
            old = held[0] if held is not None and held[1] > at else None
            new = change(old)
            if new == old:
                return new
            if new is None:
                self._levels.pop((key, metric), None)
                return None
            if len(self._levels) >= self._max_levels:
                self._trim(at)
            self._levels[(key, metric)] = (new, at + TTL)
            return new

    def _trim(self, at: float) -> None:
        """Drop expired levels, then the oldest written, to stay under the bound."""
        for name in [name for name, (_, expires) in self._levels.items() if expires <= at]:
            del self._levels[name]
        while len(self._levels) >= self._max_levels:
            del self._levels[next(iter(self._levels))]

    def close(self) -> None:
        """Nothing to release: the levels live as long as their `MemoryStore`."""


# One table per MemoryStore object: limiters given the same object share both.
_memory_levels: weakref.WeakKeyDictionary[object, MemoryLevelStore] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def _levels_of_memory_store(store: object) -> MemoryLevelStore:
    with _memory_lock:
        levels = _memory_levels.get(store)
        if levels is None:
            levels = _memory_levels[store] = MemoryLevelStore()
        return levels


# -- SQLite -------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_levels (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    metric TEXT NOT NULL,
    effective INTEGER NOT NULL,
    stated INTEGER,
    last_change REAL NOT NULL,
    last_cut REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (project, model, metric)
) WITHOUT ROWID
"""

_COLUMNS = "metric, effective, stated, last_change, last_cut"


def _row_level(row: tuple[Any, ...]) -> Level:
    return Level(effective=row[0], stated=row[1], last_change=row[2], last_cut=row[3])


class SQLiteLevelStore:
    """Levels in the ledger's SQLite file, table `quota_levels`."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 10.0, on_corrupt: OnCorrupt = "fail"
    ) -> None:
        self._file = SQLiteFile(
            path,
            what="the SQLite level store",
            schema=_SCHEMA,
            busy_timeout=busy_timeout,
            on_corrupt=on_corrupt,
        )

    @classmethod
    def from_url(cls, url: str | StoreUrl) -> SQLiteLevelStore:
        path, on_corrupt = sqlite_file_of(url)
        return cls(path, on_corrupt=on_corrupt)

    @property
    def url(self) -> str:
        return f"sqlite:///{self._file.path}"

    def __repr__(self) -> str:
        return f"SQLiteLevelStore({str(self._file.path)!r})"

    def load(
        self, keys: Collection[QuotaKey], *, at: float
    ) -> dict[tuple[QuotaKey, Metric], Level]:
        wanted = set(keys)
        if not wanted:
            return {}
        # The table holds only ledgers that learned something lately: reading it
        # whole is one statement, where a query per ledger would be one each.
        rows = self._file.read(
            f"SELECT project, model, {_COLUMNS} FROM quota_levels WHERE expires_at > ?", (at,)
        )
        found: dict[tuple[QuotaKey, Metric], Level] = {}
        for project, model, metric, *rest in rows:
            key = QuotaKey(project, model)
            if key in wanted and metric in _METRICS:
                found[(key, metric)] = _row_level(tuple(rest))
        return found

    def update(self, key: QuotaKey, metric: Metric, change: Change, *, at: float) -> Level | None:
        name = (key.project, key.model, metric)
        with self._file.transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS}, expires_at FROM quota_levels "
                "WHERE project = ? AND model = ? AND metric = ?",
                name,
            ).fetchone()
            old = _row_level(row[1:5]) if row is not None and row[5] > at else None
            new = change(old)
            if new == old:
                return new
            if new is None:
                db.execute(
                    "DELETE FROM quota_levels WHERE project = ? AND model = ? AND metric = ?",
                    name,
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO quota_levels "
                    "(project, model, metric, effective, stated, last_change, last_cut, "
                    "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*name, new.effective, new.stated, new.last_change, new.last_cut, at + TTL),
                )
            # Writes are rare (a learn, a recovery step): sweeping here keeps the table
            # to the ledgers still learning without a job of its own.
            db.execute("DELETE FROM quota_levels WHERE expires_at <= ?", (at,))
            return new

    def close(self) -> None:
        self._file.close()


# -- Redis --------------------------------------------------------------------------


def _dump(level: Level, expires_at: float) -> str:
    stated = "-" if level.stated is None else str(level.stated)
    return f"{level.effective} {stated} {level.last_change!r} {level.last_cut!r} {expires_at!r}"


def _parse(raw: bytes | str | None, at: float) -> Level | None:
    """The level a field holds, if it has not expired at `at`.

    The expiry travels in the value, on the callers' clock (a FakeClock, a
    ScaledClock...); the key's Redis TTL only bounds what an idle Redis keeps.
    """
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        effective, stated, last_change, last_cut, expires_at = text.split(" ")
        if not float(expires_at) > at:
            return None
        return Level(
            effective=int(effective),
            stated=None if stated == "-" else int(stated),
            last_change=float(last_change),
            last_cut=float(last_cut),
        )
    except ValueError:
        # Written by something else: no level, and the next learn overwrites it.
        return None


class RedisLevelStore:
    """Levels in Redis: a hash per ledger, hash-tagged like the ledger's keys."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gg",
        retry_after: float = RETRY_AFTER,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        options = with_options(
            url,
            prefix=prefix,
            retry_after=retry_after,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
        )
        parsed = parse_store_url(options)
        self._backend = RedisBackend(parsed)
        self._client = self._backend.client
        self._watch_error: type[Exception] = self._backend.redis.WatchError
        self._prefix = parsed.prefix
        self._url = parsed.shown  # no credentials
        # Quiet: the ledger on the same Redis reports the outage (StoreDegraded).
        self._outage = Outage(
            f"Redis at {self._url}",
            retry_after=parsed.retry_after,
            meanwhile="learned limits are this process's own",
        )
        self._names: dict[QuotaKey, str] = {}

    @classmethod
    def from_url(cls, url: str | StoreUrl) -> RedisLevelStore:
        """The quota store's URL, with its options (`prefix`, `retry_after`,
        `socket_timeout`; `on_outage` is the ledger's: levels always fall back)."""
        parsed = url if isinstance(url, StoreUrl) else parse_store_url(url)
        return cls(
            parsed.client_url,
            prefix=parsed.prefix,
            retry_after=parsed.retry_after,
            socket_timeout=parsed.socket_timeout,
            connect_timeout=parsed.connect_timeout,
        )

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"RedisLevelStore({self._url!r})"

    def _name(self, key: QuotaKey) -> str:
        name = self._names.get(key)
        if name is None:
            if any(ch in key.project for ch in "{}"):
                raise ConfigError(f"project {key.project!r} must not contain braces")
            name = f"{self._prefix}:{{{key.project}:{key.model}}}:levels"
            if len(self._names) < 10_000:  # a cache, bounded
                self._names[key] = name
        return name

    def _call(self, at: float, action: Callable[[], Any]) -> Any:
        if self._outage.skipping(at):
            raise StoreError(f"Redis at {self._url} is unreachable (retrying shortly)")
        try:
            result = action()
        except self._backend.unreachable as exc:
            self._outage.failed(exc, at)
            raise StoreError(f"Redis at {self._url} failed: {exc}") from exc
        except self._backend.error as exc:
            raise StoreError(f"Redis at {self._url} failed: {exc}") from exc
        self._outage.answered()
        return result

    def load(
        self, keys: Collection[QuotaKey], *, at: float
    ) -> dict[tuple[QuotaKey, Metric], Level]:
        ordered = list(keys)
        if not ordered:
            return {}
        names = [self._name(key) for key in ordered]

        def action() -> list[dict[bytes, bytes]]:
            with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(name)
                result: list[dict[bytes, bytes]] = pipe.execute()
                return result

        found: dict[tuple[QuotaKey, Metric], Level] = {}
        for key, fields in zip(ordered, self._call(at, action), strict=True):
            for field, raw in fields.items():
                metric = field.decode()
                level = _parse(raw, at)
                if level is not None and metric in _METRICS:
                    found[(key, metric)] = level
        return found

    def update(self, key: QuotaKey, metric: Metric, change: Change, *, at: float) -> Level | None:
        name = self._name(key)
        watch_error = self._watch_error

        def action() -> Level | None:
            with self._client.pipeline() as pipe:
                for _ in range(_MAX_RACES):
                    try:
                        pipe.watch(name)  # type: ignore[no-untyped-call]
                        old = _parse(pipe.hget(name, metric), at)
                        new = change(old)
                        if new == old:
                            pipe.unwatch()
                            return new
                        pipe.multi()
                        if new is None:
                            pipe.hdel(name, metric)
                        else:
                            pipe.hset(name, metric, _dump(new, at + TTL))
                            pipe.expire(name, int(TTL))
                        pipe.execute()
                        return new
                    except watch_error:
                        continue
            raise StoreError(
                f"Redis at {self._url}: the level of {key.model} in project {key.project} "
                f"kept changing under {_MAX_RACES} attempts to update it"
            )

        result: Level | None = self._call(at, action)
        return result

    def close(self) -> None:
        self._backend.close()


# -- opening ------------------------------------------------------------------------


def open_level_store(store: QuotaStore, *, url: str | None = None) -> LevelStore | None:
    """The levels beside `store`'s ledger; None for a store this module does not know.

    `url` is the URL `store` was opened from, when the caller has it: it keeps the
    credentials and options that `store.url` leaves out. Without it, a Redis store
    is reached at `store.url` (no password: one that needs it falls back to local
    levels, with a warning, at its first use).
    """
    try:
        where = parse_store_url(url if url is not None else store.url)
    except ConfigError:  # a store of the caller's own making: levels stay per limiter
        return None
    if where.kind == "memory":
        try:
            return _levels_of_memory_store(store)
        except TypeError:  # an object weakref cannot follow: levels stay per limiter
            return None
    if where.kind == "sqlite":
        path = getattr(store, "path", None)
        if isinstance(path, Path):
            return SQLiteLevelStore(path)
        return SQLiteLevelStore.from_url(where)
    return RedisLevelStore.from_url(where)
