"""Who may be answered from a cache entry: scopes, and the credentials that gate them.

An answer is kept for a *scope* and only found by lookups of that same scope: a shared
store (one SQLite file, one Redis) holds many scopes side by side, none visible to the
others. A Guard's scope comes from `CacheConfig.scope`:

- "project" (default): the Google Cloud project the request is sent under, so the keys
  of one project share answers (they share its quota and its data anyway) and other
  projects never see them. The project is `Guard(project=...)` (or `[[projects]] name`
  in the configuration) when one is named, the client's Vertex AI project otherwise.
  When neither names one, the scope is the API key itself: a Gemini API key does not
  tell which project it belongs to without a request, and guessing wrong would hand one
  project's answers to another, so two unnamed keys never share.
- "key": the API key, even between keys of one project.
- "shared": every Guard of the store, whatever its project: an explicit opt-in for one
  organisation's projects that may read each other's answers.

Explicit scopes (`CacheScope.tenant(token)`, `CacheScope.shared(group=...)`) let a
server that answers many tenants with one key keep each tenant apart, or let a named
group of them share.

Whatever the scope, an answer is served only under a *credential* the API has
accepted: a key with no successful call yet (in this process or recorded in the store)
is sent upstream until one of its own calls succeeds, and a key the API refused
(invalid, leaked, suspended, permission denied) is not served again until one succeeds
anew. An acceptance lasts `CacheConfig.credential_ttl` seconds, so a key revoked while
only cache hits were served is checked again within that time.

Stored names never show a scope or a credential: both are written as HMAC-SHA256
digests keyed with a random secret kept in the store (`ScopeKeys`). The digests
cannot be joined across stores, and no key material is written.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gemini_guard.diagnosis import Category
from gemini_guard.errors import ConfigError

if TYPE_CHECKING:
    from google import genai

    from gemini_guard.cache.stores.base import CacheStore
    from gemini_guard.quota.pool import ProjectPool

__all__ = [
    "REFUSED_CREDENTIAL",
    "CacheScope",
    "ScopeKeys",
    "ScopeKind",
    "ScopeMode",
    "client_api_key",
    "guard_scope",
    "refuses_credential",
]

ScopeMode = Literal["project", "key", "shared"]
ScopeKind = Literal["project", "key", "shared", "tenant"]

# What the API says about a credential itself (not about one request): the caller is
# not to be answered, from the cache either.
REFUSED_CREDENTIAL = frozenset({Category.INVALID_API_KEY, Category.PERMISSION_DENIED})

# The Guard's own default project name: not a project anyone named.
_UNNAMED = frozenset({"default", "*"})


def refuses_credential(category: Category | str) -> bool:
    """True when a failure of this category means the credential was refused."""
    return category in REFUSED_CREDENTIAL


@dataclass(frozen=True, slots=True)
class CacheScope:
    """The set of callers an entry may be served to (see the module docstring).

    `name` identifies the scope (a project id, an API key, a tenant token, a group
    name) and `credential` is the API key whose acceptance gates every hit (None: not
    gated, for callers authenticated elsewhere). Neither is shown by `repr`, and
    neither is ever written to a store in clear.
    """

    kind: ScopeKind
    name: str = field(repr=False)
    credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("project", "key", "shared", "tenant"):
            raise ConfigError(
                f"cache scope kind {self.kind!r} is not one of: project, key, shared, tenant"
            )
        if self.kind != "shared" and not (isinstance(self.name, str) and self.name):
            raise ConfigError(f"a {self.kind} cache scope needs a non-empty name")
        if self.credential is not None and not (
            isinstance(self.credential, str) and self.credential
        ):
            raise ConfigError("a cache scope's credential must be a non-empty API key or None")

    @classmethod
    def project(cls, project: str, *, credential: str | None = None) -> CacheScope:
        """Entries shared by the keys of one Google Cloud project."""
        return cls("project", project, credential)

    @classmethod
    def key(cls, api_key: str) -> CacheScope:
        """Entries of one API key alone (gated by that key)."""
        return cls("key", api_key, api_key)

    @classmethod
    def shared(cls, *, group: str = "", credential: str | None = None) -> CacheScope:
        """Entries shared by every caller of the group `group` (by default the one
        group every `shared` Guard of the store belongs to)."""
        return cls("shared", group, credential)

    @classmethod
    def tenant(cls, token: str, *, credential: str | None = None) -> CacheScope:
        """Entries of one tenant (a gateway token): no other tenant sees them."""
        return cls("tenant", token, credential)

    def partition(self) -> bytes:
        """The bytes the scope's stored name is derived from (never stored itself)."""
        return f"{self.kind}\x00{self.name}".encode()


class ScopeKeys:
    """Stored names of scopes and credentials: HMAC-SHA256 with the store's secret.

    The secret is read from the store on first use (a store makes it once, at random,
    and every process using the store reads the same one); names are remembered, so
    a hit computes none. A store that cannot be reached raises `StoreError` here, and
    the cache treats the call as not cacheable.
    """

    def __init__(self, store: CacheStore) -> None:
        self._store = store
        self._secret: bytes | None = None
        self._lock = threading.Lock()
        # Names already worked out (a hit computes none).
        self._scopes: dict[CacheScope, str] = {}
        self._credentials: dict[str, str] = {}

    def _key(self) -> bytes:
        secret = self._secret
        if secret is None:
            with self._lock:
                if self._secret is None:
                    self._secret = self._store.secret()
                secret = self._secret
        return secret

    def _mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self._key(), purpose.encode() + b"\x00" + data, hashlib.sha256).hexdigest()

    def scope_id(self, scope: CacheScope) -> str:
        """The scope's name in stored keys (32 hex digits)."""
        name = self._scopes.get(scope)
        if name is None:
            name = self._scopes[scope] = self._mac("scope", scope.partition())[:32]
        return name

    def credential_id(self, credential: str) -> str:
        """The credential's name in the store (64 hex digits)."""
        name = self._credentials.get(credential)
        if name is None:
            name = self._credentials[credential] = self._mac("credential", credential.encode())
        return name


def client_api_key(client: Any) -> str | None:
    """The API key `client` sends, or None (Vertex AI credentials, unknown clients).

    google-genai keeps it on the client's API client and offers no public accessor;
    the rest of gemini-guard reads it the same way (to redact it). A client whose key
    cannot be read is treated as having none, which only ever narrows what is served.
    """
    key = getattr(getattr(client, "_api_client", None), "api_key", None)
    return key if isinstance(key, str) and key else None


def _vertex_project(client: Any) -> str | None:
    if not getattr(client, "vertexai", False):
        return None
    project = getattr(getattr(client, "_api_client", None), "project", None)
    return project if isinstance(project, str) and project else None


def guard_scope(
    mode: ScopeMode,
    *,
    client: genai.Client | Any,
    project: str,
    pool: ProjectPool | None = None,
) -> CacheScope:
    """The scope of a Guard's calls (see the module docstring for the choices).

    With a project pool the pool chooses each call's project after the lookup, so the
    scope is the pool (its projects, or its keys with "key"), and hits are not gated
    by one key: the pool's keys all come from the operator's own configuration.
    """
    if mode not in ("project", "key", "shared"):
        raise ConfigError(f"cache scope {mode!r} is not one of: project, key, shared")
    if pool is not None:
        if mode == "shared":
            return CacheScope.shared()
        if mode == "key":
            keys = sorted(k for member in pool.projects for k in member.keys)
            return CacheScope("key", "pool\x00" + "\x00".join(keys))
        names = sorted(member.name for member in pool.projects)
        return CacheScope.project("pool\x00" + "\x00".join(names))
    api_key = client_api_key(client)
    if mode == "shared":
        return CacheScope.shared(credential=api_key)
    if mode == "project":
        named = project if project not in _UNNAMED else _vertex_project(client)
        if named is not None:
            return CacheScope.project(named, credential=api_key)
    if api_key is not None:
        return CacheScope.key(api_key)
    raise ConfigError(
        f"cache scope {mode!r}: the client's API key cannot be read and no project is "
        "named, so the cache cannot tell whose answers it holds; pass "
        "Guard(project='<your Google Cloud project id>'), or use an API key client"
    )
