"""Keep API keys and bearer tokens out of every text a Diagnosis carries.

Error messages echo what the caller sent: a `?key=AIza...` URL in a proxy's page, a
`Consumer 'api_key:AIza...' has been suspended` message. Diagnoses end up in logs,
events and reports, so they never hold a key.

Two passes: first every secret this process registered (`gemini_guard.secrets`:
the exact keys and tokens in use, whatever their shape), then the patterns, which
catch keys the process never held (a neighbour's key in a proxy page).
"""

from __future__ import annotations

import re

from gemini_guard.secrets import REDACTED, scrub

__all__ = ["REDACTED", "redact"]

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
