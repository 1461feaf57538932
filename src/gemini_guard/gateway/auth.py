"""Who is calling the gateway: gateway tokens, never Google keys.

Each SDK sends its credential its own way: google-genai and `@google/genai` in the
`x-goog-api-key` header, REST users as `?key=`, the OpenAI SDK as
`Authorization: Bearer`. The gateway reads whichever is present, hashes it and
compares the hash with every configured token's in constant time, so neither the
answer nor its timing tells which token (or which prefix) came close. Upstream
Google keys are not involved here at all: they stay in `[[projects]]`.

    table = TokenTable.from_section(config.gateway)
    caller = table.authenticate(presented_token(headers, query))
    if caller is None: ...  # refuse(...), nothing goes upstream
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from gemini_guard.config import GatewaySection
from gemini_guard.errors import ConfigError
from gemini_guard.secrets import register_secret

__all__ = [
    "Caller",
    "GatewayRefusal",
    "TokenTable",
    "missing_token",
    "model_not_allowed",
    "presented_token",
    "unknown_token",
]

# The reason our refusals carry in ErrorInfo, so a client (and diagnose) can tell a
# gateway's refusal from Google's.
REFUSAL_DOMAIN = "gemini-guard.gateway"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated client of the gateway: its name (what logs and metrics show)
    and what it may do."""

    name: str
    models: frozenset[str] | None  # None: every model
    rpm: int | None = None
    rpd: int | None = None
    usd_per_day: float | None = None
    # The hex SHA-256 of the caller's token: what its cache scope is derived from
    # (never the token itself).
    key: str = field(default="", repr=False)

    def may_use(self, model: str) -> bool:
        return self.models is None or model.removeprefix("models/") in self.models


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    caller: Caller


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """The configured tokens, kept only as SHA-256 digests."""

    def __init__(self, entries: list[tuple[bytes, Caller]]) -> None:
        self._entries = tuple(_Entry(digest, caller) for digest, caller in entries)

    @classmethod
    def from_section(
        cls, section: GatewaySection, *, environ: Mapping[str, str] | None = None
    ) -> TokenTable:
        """Read each token from its environment variable (or take its hash). A variable
        that is missing or empty is an error naming it, before the gateway starts."""
        env = os.environ if environ is None else environ
        entries: list[tuple[bytes, Caller]] = []
        for index, token in enumerate(section.tokens):
            if token.token_env is not None:
                value = env.get(token.token_env, "")
                if not value:
                    raise ConfigError(
                        f"gateway.tokens[{index}] ({token.name}): environment variable "
                        f"{token.token_env} is not set or empty; export the token there, "
                        "or give its sha256 instead"
                    )
                register_secret(value)
                digest = _digest(value)
            else:
                assert token.sha256 is not None  # the section allows exactly one source
                digest = bytes.fromhex(token.sha256)
            caller = Caller(
                name=token.name,
                models=None if token.models is None else frozenset(token.models),
                rpm=token.rpm,
                rpd=token.rpd,
                usd_per_day=token.usd_per_day,
                key=digest.hex(),
            )
            entries.append((digest, caller))
        digests = [d for d, _ in entries]
        if len(set(digests)) != len(digests):
            raise ConfigError(
                "two gateway tokens are the same token; give each client its own, so "
                "its budget and its log lines are its own"
            )
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def callers(self) -> list[Caller]:
        return [entry.caller for entry in self._entries]

    def authenticate(self, token: str | None) -> Caller | None:
        """The caller `token` belongs to, or None. Every entry is compared, whatever
        matched, so the time taken does not depend on which one did."""
        if not token:
            return None
        digest = _digest(token)
        found: Caller | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry.caller
        return found


def presented_token(headers: Mapping[str, str], query: str = "") -> str | None:
    """The credential a client sent: `x-goog-api-key`, else `Authorization: Bearer`,
    else `?key=`. `headers` must be case-insensitive (Starlette's and httpx's are)."""
    header = headers.get("x-goog-api-key", "").strip()
    if header:
        return header
    authorization = headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name == "key" and value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class GatewayRefusal:
    """A refusal in Gemini's own error format, saying it came from the gateway."""

    status: int
    body: dict[str, Any]


def _refusal(code: int, status: str, message: str, reason: str) -> GatewayRefusal:
    return GatewayRefusal(
        code,
        {
            "error": {
                "code": code,
                "message": f"gemini-guard gateway: {message}",
                "status": status,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": reason,
                        "domain": REFUSAL_DOMAIN,
                    }
                ],
            }
        },
    )


def missing_token() -> GatewayRefusal:
    return _refusal(
        401,
        "UNAUTHENTICATED",
        "no gateway token was sent. Send the token you were given as the API key "
        "(x-goog-api-key header, Authorization: Bearer, or ?key=); Google API keys "
        "are not accepted here.",
        "GATEWAY_TOKEN_MISSING",
    )


def unknown_token() -> GatewayRefusal:
    return _refusal(
        403,
        "PERMISSION_DENIED",
        "the gateway token is not known. Ask the gateway's operator for a token; "
        "a Google API key is not a gateway token.",
        "GATEWAY_TOKEN_UNKNOWN",
    )


def model_not_allowed(caller: Caller, model: str) -> GatewayRefusal:
    allowed = ", ".join(sorted(caller.models or ())) or "none"
    return _refusal(
        403,
        "PERMISSION_DENIED",
        f"token {caller.name!r} may not use model {model!r}; allowed: {allowed}.",
        "GATEWAY_MODEL_NOT_ALLOWED",
    )
