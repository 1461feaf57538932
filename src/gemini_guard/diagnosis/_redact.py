"""Keep API keys and bearer tokens out of every text a Diagnosis carries.

Error messages echo what the caller sent: a `?key=AIza...` URL in a proxy's page, a
`Consumer 'api_key:AIza...' has been suspended` message. Diagnoses end up in logs,
events and reports, so they never hold a key. The scrubbing itself lives in
`gemini_guard.secrets`, beside the registry of the secrets this process holds.
"""

from __future__ import annotations

from gemini_guard.secrets import REDACTED, redact

__all__ = ["REDACTED", "redact"]
