"""The one parser of store URLs: every store family, the CLI and the doctor read them here.

    memory://                                   this process only
    sqlite:///relative/state.db                 processes of one host (`sqlite:////abs`,
    sqlite:///~/state.db?on_corrupt=reset         `~` expanded)
    redis://[user:password@]host:port/db        many hosts (`rediss://` for TLS, `unix://`)
        ?on_outage=fail&prefix=gg&retry_after=5&socket_timeout=0.05&connect_timeout=0.25

The quota ledger, the learned levels, the breakers and the cache may share one URL:
each reads the options it knows from the one `StoreUrl` and ignores the others, so a
URL that one of them accepts, all of them accept. Options redis-py knows
(`health_check_interval`, `ssl_cert_reqs`...) stay in `client_url` for it.

Redis timeouts: every Redis operation of a store is a few hundred microseconds on a
healthy server (one Lua script or a pipeline), so `socket_timeout` defaults to 50 ms:
far above a healthy answer, even across zones, and small next to a Gemini call
(hundreds of ms), so a frozen Redis (SIGSTOP, a stalled VM, a full network buffer)
costs a call at most two timeouts (one retry on a fresh connection) before the store
degrades and stops asking for `retry_after` seconds, like a dead one. A frozen server
still accepts TCP connections (the kernel does), so without a read timeout each call
would wait for as long as the old 2 s default. Opening a connection may cross a slower
path (TLS, another region): `connect_timeout` defaults to 250 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gemini_guard.errors import ConfigError

__all__ = [
    "CONNECT_TIMEOUT",
    "EXAMPLES",
    "RETRY_AFTER",
    "SOCKET_TIMEOUT",
    "OnCorrupt",
    "OnOutage",
    "StoreKind",
    "StoreUrl",
    "parse_store_url",
    "shown_url",
    "sqlite_file_of",
    "with_options",
]

SOCKET_TIMEOUT = 0.05  # seconds per read/write of an open Redis connection (see above)
CONNECT_TIMEOUT = 0.25  # seconds to open one
RETRY_AFTER = 5.0  # seconds a store leaves a Redis alone after it stopped answering

EXAMPLES = "memory://, sqlite:///path/to/state.db, redis://localhost:6379/0"

StoreKind = Literal["memory", "sqlite", "redis"]
OnOutage = Literal["degrade", "fail"]
OnCorrupt = Literal["fail", "reset"]

_KINDS: dict[str, StoreKind] = {
    "memory": "memory",
    "sqlite": "sqlite",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
}
_SECONDS = ("retry_after", "socket_timeout", "connect_timeout")
_REDIS_OPTIONS = ("on_outage", "prefix", *_SECONDS)


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store URL: where the state lives and the options every store reads.

    `raw` may hold a password: show `shown`, never `raw`. `client_url` is what redis-py
    gets (our options taken off, its own left); `path` is the SQLite file.
    """

    raw: str
    scheme: str  # as written, lower case: memory, sqlite, redis, rediss, unix
    kind: StoreKind
    shown: str
    path: Path | None = None
    client_url: str = ""
    on_corrupt: OnCorrupt = "fail"
    on_outage: OnOutage = "degrade"
    prefix: str = "gg"
    retry_after: float = RETRY_AFTER
    socket_timeout: float = SOCKET_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT

    def __repr__(self) -> str:  # the dataclass's would print `raw`, password and all
        return f"StoreUrl({self.shown!r})"


def shown_url(url: str) -> str:
    """`url` fit for logs and messages: no user, password or options.

    `sqlite:///relative` and `sqlite:////absolute` keep every slash (they carry the
    path's meaning); a Redis URL keeps its scheme, host, port and database.
    """
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    parts = urlsplit(url)
    if scheme.lower() in ("sqlite", "memory") or not parts.netloc:
        return f"{scheme}://{rest.partition('?')[0]}"
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: show the host alone
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_store_url(url: object, *, option: str = "store") -> StoreUrl:
    """`url` parsed and checked; a ConfigError naming what is wrong and the fix.

    `option` names the setting the URL came from ("store", "cache"), for messages.
    """
    noun = "cache" if option == "cache" else "store"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"{option}={url!r} is not a {noun} URL; use one of {_examples(noun)}")
    shown = shown_url(url)
    scheme = url.split("://", 1)[0].lower()
    kind = _KINDS.get(scheme)
    if kind is None:
        raise ConfigError(
            f"{option}={shown!r}: unknown scheme {scheme!r}; use one of {_examples(noun)}"
        )
    if kind == "memory":
        if url.rstrip("/") != "memory:":
            raise ConfigError(
                f"{option}={shown!r}: a memory {noun} takes no path nor options; use 'memory://'"
            )
        return StoreUrl(raw=url, scheme=scheme, kind=kind, shown="memory://")
    if kind == "sqlite":
        return _sqlite(url, scheme, shown, option)
    return _redis(url, scheme, shown, option)


def sqlite_file_of(url: str | StoreUrl, *, option: str = "store") -> tuple[Path, OnCorrupt]:
    """The file a `sqlite:///` URL names and its `on_corrupt`; a ConfigError for another."""
    parsed = url if isinstance(url, StoreUrl) else parse_store_url(url, option=option)
    if parsed.path is None:
        raise ConfigError(f"{option}={parsed.shown!r} is not a sqlite:/// URL")
    return parsed.path, parsed.on_corrupt


def _examples(noun: str) -> str:
    return EXAMPLES.replace("state.db", "cache.db") if noun == "cache" else EXAMPLES


def _sqlite(url: str, scheme: str, shown: str, option: str) -> StoreUrl:
    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"on_corrupt"})
    if unknown:
        raise ConfigError(
            f"{option}={shown!r}: a sqlite URL takes no options but ?on_corrupt=reset (move a "
            f"damaged file aside and start afresh); unknown: {', '.join(unknown)}"
        )
    on_corrupt = options.get("on_corrupt", "fail")
    if on_corrupt not in ("fail", "reset"):
        raise ConfigError(
            f"{option}={shown!r}: on_corrupt must be 'fail' or 'reset', not {on_corrupt!r}"
        )
    if not path.startswith("/") or path in {"/", "/:memory:"} or path.endswith("/"):
        raise ConfigError(
            f"{option}={shown!r} names no database file; use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (for one process only, memory:// is faster)"
        )
    return StoreUrl(
        raw=url,
        scheme=scheme,
        kind="sqlite",
        shown=shown,
        path=Path(path[1:]).expanduser(),
        on_corrupt="reset" if on_corrupt == "reset" else "fail",
    )


def _redis(url: str, scheme: str, shown: str, option: str) -> StoreUrl:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "on_corrupt" in options:
        raise ConfigError(
            f"{option}={shown!r}: on_corrupt is an option of sqlite:// URLs; a Redis store "
            "takes on_outage=degrade|fail, prefix, retry_after, socket_timeout, connect_timeout"
        )
    ours = {name: options.pop(name) for name in _REDIS_OPTIONS if name in options}
    on_outage = ours.get("on_outage", "degrade")
    if on_outage not in ("degrade", "fail"):
        raise ConfigError(
            f"{option}={shown!r}: on_outage={on_outage!r}: use 'degrade' or 'fail' (degrade: "
            "go on with a local store while Redis does not answer; fail: raise StoreError)"
        )
    prefix = ours.get("prefix", "gg")
    if not prefix or any(ch in prefix for ch in "{}"):
        raise ConfigError(
            f"{option}={shown!r}: prefix={prefix!r} must be non-empty and must not contain "
            "braces (they mark Redis Cluster hash tags); use letters, digits, ':' or '-'"
        )
    seconds = {name: _seconds(name, ours.get(name), shown, option) for name in _SECONDS}
    return StoreUrl(
        raw=url,
        scheme=scheme,
        kind="redis",
        shown=shown,
        client_url=urlunsplit(parts._replace(query=urlencode(options))),
        on_outage="fail" if on_outage == "fail" else "degrade",
        prefix=prefix,
        retry_after=seconds["retry_after"],
        socket_timeout=seconds["socket_timeout"],
        connect_timeout=seconds["connect_timeout"],
    )


def _seconds(name: str, raw: str | None, shown: str, option: str) -> float:
    if raw is None:
        return _DEFAULTS[name]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ConfigError(
            f"{option}={shown!r}: {name}={raw!r} must be a number of seconds above 0 "
            f"(e.g. {name}={_DEFAULTS[name]:g})"
        )
    return value


_DEFAULTS = {
    "retry_after": RETRY_AFTER,
    "socket_timeout": SOCKET_TIMEOUT,
    "connect_timeout": CONNECT_TIMEOUT,
}


def with_options(url: str, **options: object) -> str:
    """`url` with `options` set in its query, over the URL's own (for stores built
    from keyword arguments: the one parser then checks them too)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({name: _text(value) for name, value in options.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def _text(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)
