"""Every secret this process knows, registered once and scrubbed from every text we write.

    register_secret(token)          # a key, a gateway token, a Vertex access token
    scrub("... token ...")          # -> "... [REDACTED] ..."
    raise Failed(...) from scrubbed(sdk_error)

Pattern redaction (`redact`, below) hides what looks like a Google key or a bearer
token; it cannot know that `sk-gw-7f3e...` or a 40-character gateway token is a
secret. So every place that learns a credential (the Guard's `api_key`, the client it
wraps, a config's `api_key_env` variable, a key pool) registers it here, and `redact`
replaces each registered value before it applies the patterns. A server that echoes a
credential in an error body then cannot put it in a message, an event, a log line, a
batch file, a journal or a report.

The registry only grows: a key once in use may still sit in a message built later.
Values shorter than `MIN_LENGTH` are not registered: replacing "abc" everywhere would
garble ordinary text, and no real credential is that short.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
    "ENVIRONMENT_KEYS",
    "MIN_LENGTH",
    "REDACTED",
    "known_secrets",
    "redact",
    "redacted",
    "register_environment",
    "register_secret",
    "register_secrets",
    "scrub",
    "scrubbed",
]

REDACTED = "[REDACTED]"
MIN_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
# One alternation, longest first (a secret that contains another is replaced whole);
# rebuilt on registration, which happens a handful of times per process.
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember `value` (and its URL-encoded form) as a secret to scrub everywhere."""
    global _pattern
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < MIN_LENGTH:
        return
    forms = {value, quote(value, safe=""), quote(value)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)


# Where the SDK (and the Google auth libraries) read a credential from by themselves.
ENVIRONMENT_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_ACCESS_TOKEN")


def register_environment(environ: Mapping[str, str] | None = None) -> None:
    """Register the credentials the SDK would take from the environment by itself."""
    env = os.environ if environ is None else environ
    for name in ENVIRONMENT_KEYS:
        register_secret(env.get(name))


def known_secrets() -> frozenset[str]:
    """The registered values (for tests and for checks that a text is clean)."""
    with _lock:
        return frozenset(_secrets)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by [REDACTED]."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


# Google API keys: "AIza" and 35 more URL-safe characters. Shorter runs are matched too,
# so a truncated key in a log line is hidden as well.
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{8,}")
# `key=...` in a query string or a form, whatever the key looks like.
_KEY_PARAM = re.compile(r"(?i)(?<![A-Za-z0-9_-])((?:api[_-]?)?key=)[^&\s'\"<>]+")
# OAuth access tokens and explicit bearer credentials.
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
_OAUTH_TOKEN = re.compile(r"ya29\.[0-9A-Za-z_\-.]{8,}")


def redact(text: str) -> str:
    """`text` with every registered secret, API key, `key=` parameter and bearer token
    replaced by [REDACTED]."""
    text = scrub(text)
    text = _KEY_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    text = _GOOGLE_KEY.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _OAUTH_TOKEN.sub(REDACTED, text)


def redacted(value: Any) -> Any:
    """`value` (a string, or a mapping, list or tuple holding strings) as a copy with
    every string in it redacted; anything else comes back as it is."""
    return _clean(value)


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_clean(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def scrubbed(exc: BaseException | None) -> BaseException | None:
    """`exc` made safe to print, in place, and returned: the error we chain as the
    `__cause__` of what we raise, so `logging.exception` and an uncaught error's
    traceback print no secret.

    Its `args` and its public text attributes (an SDK `APIError`'s message, details
    and response JSON) are redacted, and so are the errors chained under it. The
    exception keeps its type, so `except`-clauses and `isinstance` checks on
    `__cause__` still work. Its HTTP response object, if any, is left as it is: no
    traceback prints it.
    """
    seen: set[int] = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _scrub_one(current)
        current = current.__cause__ or current.__context__
    return exc


def _scrub_one(exc: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        exc.args = tuple(_clean(a) for a in exc.args)
    attributes = getattr(exc, "__dict__", None)
    if not isinstance(attributes, dict):
        return
    for name, value in list(attributes.items()):
        if name.startswith("_") or not isinstance(value, str | Mapping | list | tuple):
            continue
        clean = _clean(value)
        if clean != value:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, name, clean)


# A key the SDK picks from the environment is known before any Guard exists: a
# `diagnose` or `doctor` run that never builds a client still hides it.
register_environment()
