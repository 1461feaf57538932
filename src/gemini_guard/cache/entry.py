"""A stored answer, decoded once: what a hit needs, ready to hand out.

Everything a hit reports is fixed when the answer is stored: the answering model,
whether it was a stream, the tokens and dollars it saves, and the responses
themselves. An `Entry` computes them once, from the stored bytes (so an entry read
back from SQLite or Redis and one kept in memory are the same), and each hit only
makes fresh copies of the responses (`gemini_guard.cache.copying`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.genai import types

from gemini_guard.cache import codec
from gemini_guard.cache.copying import copier
from gemini_guard.cache.stats import savings_of

__all__ = ["Entry"]

Response = types.GenerateContentResponse


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded cache entry (build it with `Entry.encode` or `Entry.decode`)."""

    model: str  # the model that answered
    stream: bool
    value: bytes  # the stored form (`codec.encode`)
    tokens_saved: int  # per hit
    dollars_saved: float  # per hit
    copiers: tuple[Callable[[], Response], ...]
    # The API's own JSON of each response, for entries kept at the HTTP level (the
    # gateway's): a hit sends these bytes as they came.
    wire: tuple[bytes, ...] | None = None

    @classmethod
    def decode(cls, value: bytes) -> Entry:
        """The entry stored as `value`."""
        model, stream, responses, wire = codec.decode_entry(value)
        tokens, dollars = 0, 0.0
        for response in responses:
            saved = savings_of(model, response.usage_metadata)
            tokens, dollars = tokens + saved.tokens, dollars + saved.dollars
        if wire and not responses:  # an OpenAI-compatible answer: its own usage fields
            saved = savings_of(model, _openai_usage(wire))
            tokens, dollars = saved.tokens, saved.dollars
        return cls(
            model=model,
            stream=stream,
            value=value,
            tokens_saved=tokens,
            dollars_saved=dollars,
            copiers=tuple(copier(r) for r in responses),
            wire=wire,
        )

    @classmethod
    def encode(cls, *, model: str, responses: Sequence[Response], stream: bool) -> Entry:
        """The entry for a completed answer. Built from its stored form rather than from
        `responses`, so a hit gives the same objects whichever store kept it."""
        return cls.decode(codec.encode(model=model, responses=responses, stream=stream))

    @classmethod
    def encode_wire(
        cls, *, model: str, bodies: Sequence[bytes], stream: bool, openai: bool = False
    ) -> Entry:
        """The entry for an answer as the API sent it (JSON bodies, one per chunk;
        `openai`: of the OpenAI-compatible surface, kept as bytes only)."""
        return cls.decode(
            codec.encode_wire(model=model, bodies=bodies, stream=stream, openai=openai)
        )

    def responses(self) -> list[Response]:
        """Fresh copies of the stored responses, the caller's to change."""
        return [make() for make in self.copiers]


def _openai_usage(bodies: Sequence[bytes]) -> types.GenerateContentResponseUsageMetadata:
    """A chat completion's `usage` (a stream's: its last chunk that has one), in the
    names Gemini's usage metadata has."""
    usage: dict[str, Any] = {}
    for body in reversed(bodies):
        try:
            answer = json.loads(body)
        except ValueError:
            continue
        found = answer.get("usage") if isinstance(answer, dict) else None
        if isinstance(found, dict):
            usage = found
            break
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return types.GenerateContentResponseUsageMetadata(
        prompt_token_count=prompt if isinstance(prompt, int) else None,
        candidates_token_count=completion if isinstance(completion, int) else None,
    )
