"""The Redis URL every Redis-backed store reads: redis-py's URL plus our options.

    redis://[user:password@]host:port/db?on_outage=fail&prefix=gg&retry_after=5
        &socket_timeout=0.05&connect_timeout=0.25

The quota ledger, the breakers, the learned limits and the cache can share one URL:
each store takes the options it knows from `split_redis_url` and hands the rest of
the URL to redis-py. `public_redis_url` is the same URL fit for logs and messages.

Timeouts: every Redis operation of a store is a few hundred microseconds on a healthy
server (one Lua script or a pipeline), so `socket_timeout` defaults to 50 ms: far
above a healthy answer, even across zones, and small next to a Gemini call (hundreds
of ms), so a frozen Redis (SIGSTOP, a stalled VM, a full network buffer) costs a call
at most two timeouts (one retry on a fresh connection) before the store degrades and
stops asking for `retry_after` seconds, like a dead one. A frozen server still
accepts TCP connections (the kernel does), so without a read timeout each call would
wait for as long as the old 2 s default. Opening a connection may cross a slower path
(TLS, another region): `connect_timeout` defaults to 250 ms.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gemini_guard.errors import ConfigError

__all__ = ["CONNECT_TIMEOUT", "SOCKET_TIMEOUT", "public_redis_url", "split_redis_url"]

# Options given as text, and as a number of seconds.
_TEXT_OPTIONS = ("on_outage", "prefix")
_SECONDS_OPTIONS = ("retry_after", "socket_timeout", "connect_timeout")

SOCKET_TIMEOUT = 0.05  # seconds per read/write of an open connection (see above)
CONNECT_TIMEOUT = 0.25  # seconds to open a connection


def split_redis_url(url: str) -> tuple[str, dict[str, Any]]:
    """`url` without gemini-guard's options (for redis-py), and those options
    (`on_outage`, `prefix` as text; `retry_after`, `socket_timeout`, `connect_timeout`
    as floats)."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    ours: dict[str, Any] = {}
    for name in _TEXT_OPTIONS:
        if name in options:
            ours[name] = options.pop(name)
    for name in _SECONDS_OPTIONS:
        if name in options:
            raw = options.pop(name)
            try:
                ours[name] = float(raw)
            except ValueError:
                raise ConfigError(
                    f"store URL option {name}={raw!r} must be a number of seconds"
                ) from None
            if not ours[name] > 0 or ours[name] == float("inf"):
                raise ConfigError(
                    f"store URL option {name}={raw!r} must be a positive number of seconds"
                )
    return urlunsplit(parts._replace(query=urlencode(options))), ours


def public_redis_url(url: str) -> str:
    """`url` without credentials or options: host, port and database only."""
    parts = urlsplit(url)
    netloc = f"{parts.hostname or ''}:{parts.port}" if parts.port else parts.hostname or ""
    return urlunsplit(parts._replace(netloc=netloc, query=""))
