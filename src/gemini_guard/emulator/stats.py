"""What the emulator saw, for tests and benchmarks: counts per project and model, and
an optional JSONL log with one line per request.

Projects, never keys: a key is mapped to its project before anything is recorded,
and requests without a usable key are recorded under the project "-".
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["RequestRecord", "Stats"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    wall: float
    elapsed: float
    project: str
    model: str
    method: str
    status: int
    reason: str | None  # None for a success; e.g. "rpm", "overloaded", "invalid_key"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": round(self.wall, 6),
            "elapsed": round(self.elapsed, 6),
            "project": self.project,
            "model": self.model,
            "method": self.method,
            "status": self.status,
            "reason": self.reason,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
        }


def _empty() -> dict[str, Any]:
    return {
        "requests": 0,
        "admitted": 0,
        "rejected": {},
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
    }


class Stats:
    """Thread-safe counters (the server thread writes, tests read) and the JSONL log."""

    def __init__(self, *, log_path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._by: dict[str, dict[str, dict[str, Any]]] = {}
        self._totals = _empty()
        self._log: TextIO | None = None
        self.log_path = Path(log_path) if log_path is not None else None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            cell = self._by.setdefault(rec.project, {}).setdefault(rec.model, _empty())
            for bucket in (cell, self._totals):
                bucket["requests"] += 1
                if rec.reason is None:
                    bucket["admitted"] += 1
                else:
                    bucket["rejected"][rec.reason] = bucket["rejected"].get(rec.reason, 0) + 1
                bucket["input_tokens"] += rec.input_tokens
                bucket["output_tokens"] += rec.output_tokens
                bucket["cached_tokens"] += rec.cached_tokens
            if self._log is not None:
                self._log.write(json.dumps(rec.to_json()) + "\n")
                self._log.flush()

    def snapshot(self) -> dict[str, Any]:
        """{"projects": {project: {model: counters}}, "totals": counters}."""
        with self._lock:
            copy: dict[str, Any] = json.loads(
                json.dumps({"projects": self._by, "totals": self._totals})
            )
            return copy

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
