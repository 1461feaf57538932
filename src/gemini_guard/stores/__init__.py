"""Where state lives: one URL parser, one way to open a backend, one outage policy.

- `url`: `parse_store_url` (the only parser of store URLs) and `shown_url`;
- `backend`: `open_backend`, sharing a Redis client per URL and a SQLite file per path
  within a process;
- `outage`: `Outage`, what a Redis-backed store does while Redis does not answer;
- `sqlite`: the SQLite file every SQLite-backed store opens the same way.

The quota ledger (`quota.stores`), the learned levels (`quota.shared_levels`), the
breakers (`policies.breaker_stores`) and the response cache (`cache.stores`) keep
their own tables and keys on these.
"""

from __future__ import annotations

from gemini_guard.stores.url import StoreUrl, parse_store_url, shown_url

__all__ = ["StoreUrl", "parse_store_url", "shown_url"]
