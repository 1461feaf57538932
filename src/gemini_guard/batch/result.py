"""What one batch request came to, and its line in the output file.

    {"id": "q1", "ok": true, "text": "...", "usage": {"prompt_token_count": 9, ...},
     "model": "gemini-2.5-flash", "attempts": 1}
    {"id": "q2", "ok": false, "text": null, "usage": null, "model": null, "attempts": 5,
     "error": {"category": "server_overloaded", "http_status": 503, "error": "FallbackExhausted",
               "message": "The model is overloaded. Please try again later."}}

Messages are redacted (no API key can appear) before they are stored anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gemini_guard.secrets import redact

__all__ = ["BatchResult", "ErrorInfo"]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a request failed, from its `Diagnosis`."""

    category: str
    http_status: int | None
    message: str
    error: str  # the exception class, e.g. "FallbackExhausted"

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "http_status": self.http_status,
            "error": self.error,
            "message": redact(self.message),
        }


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request's outcome: its text, usage and serving model, or why it failed."""

    id: str
    ok: bool
    text: str | None = None
    usage: Mapping[str, int] | None = None
    model: str | None = None
    attempts: int = 0
    error: ErrorInfo | None = None

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.id,
            "ok": self.ok,
            "text": self.text,
            "usage": dict(self.usage) if self.usage is not None else None,
            "model": self.model,
            "attempts": self.attempts,
        }
        if self.error is not None:
            line["error"] = self.error.to_json()
        return line

    def to_line(self) -> str:
        """The output line, newline included."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BatchResult:
        error = raw.get("error")
        return cls(
            id=str(raw["id"]),
            ok=bool(raw.get("ok")),
            text=raw.get("text"),
            usage=raw.get("usage"),
            model=raw.get("model"),
            attempts=int(raw.get("attempts") or 0),
            error=ErrorInfo(
                category=str(error.get("category")),
                http_status=error.get("http_status"),
                message=str(error.get("message", "")),
                error=str(error.get("error", "")),
            )
            if isinstance(error, Mapping)
            else None,
        )
