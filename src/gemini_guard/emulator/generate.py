"""Deterministic model output and token accounting for the emulator.

- Text is derived from a SHA-256 of the model, the prompt and the candidate index, so
  the same request always gets the same answer, in any process, on any run.
- Tokens are counted with the project's one estimate (`gemini_guard.tokens`: by
  script, about a token per English word and 0.6 per Chinese character, 258 per media
  part), the same number for countTokens, usageMetadata and the input-TPM quota.
- With `responseMimeType: application/json` the text is JSON, shaped by
  `responseSchema` / `responseJsonSchema` when one is given.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gemini_guard.emulator.request_body import field
from gemini_guard.tokens import (
    CHARS_PER_TOKEN,
    TextTally,
    estimate_text_tokens,
    estimate_tokens,
    truncate_to_tokens,
)

__all__ = [
    "Candidate",
    "Generation",
    "generate",
    "prompt_text",
    "request_tokens",
    "response_json",
    "split_for_stream",
    "usage_metadata",
]

_WORDS = (
    "the", "model", "answers", "with", "care", "and", "a", "clear", "plan", "for", "each",
    "request", "quota", "window", "steady", "signal", "river", "stone", "light", "system",
    "result", "simple", "measure", "token", "minute", "day", "project", "calm", "retry",
    "path", "honest", "small", "large", "quick", "slow", "bright", "north", "south", "field",
    "garden", "bridge", "harbor", "number", "letter", "song", "story", "table", "window",
    "morning", "evening", "question", "reason", "method", "pattern", "example", "moment",
    "careful", "gentle", "useful", "fair", "open", "shared", "known", "emulated",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    tokens: int
    finish_reason: str  # "STOP" or "MAX_TOKENS"


@dataclass(frozen=True, slots=True)
class Generation:
    candidates: tuple[Candidate, ...]
    prompt_tokens: int
    cached_tokens: int

    @property
    def output_tokens(self) -> int:
        return sum(c.tokens for c in self.candidates)


def prompt_text(contents: Sequence[Mapping[str, Any]], system: Mapping[str, Any] | None) -> str:
    """Every text part of the prompt, in order (what the generated answer derives from)."""
    pieces = []
    for content in ([system] if system else []) + list(contents):
        for part in field(content, "parts") or []:
            text = field(part, "text")
            if isinstance(text, str):
                pieces.append(text)
            elif part:
                pieces.append(json.dumps(part, sort_keys=True))
    return "\n".join(pieces)


def request_tokens(contents: Any, system: Any = None, tools: Any = None) -> int:
    """Input tokens of a request: contents, system instruction and tool declarations."""
    tokens = estimate_tokens(contents) + estimate_tokens(system)
    if tools:
        tokens += estimate_text_tokens(json.dumps(tools, sort_keys=True))
    return tokens


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _prose(rng: random.Random, target_tokens: int) -> str:
    return _counted_prose(rng, target_tokens)[0]


def _counted_prose(rng: random.Random, target_tokens: int) -> tuple[str, int]:
    """Sentences of `_WORDS` until their estimate reaches `target_tokens`, and that estimate."""
    sentences: list[str] = []
    tally = TextTally()
    while tally.tokens < target_tokens:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))]
        words[0] = words[0].capitalize()
        sentence = " ".join(words) + "."
        # The joining space goes with the sentence after it: a word's run starts there.
        tally.add(" " + sentence if sentences else sentence)
        sentences.append(sentence)
    return " ".join(sentences), tally.tokens


def _from_schema(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    if not isinstance(schema, Mapping) or depth > 6:
        return _prose(rng, 3)
    enum = field(schema, "enum")
    if enum:
        return rng.choice(list(enum))
    kind = str(field(schema, "type") or "").lower()
    if not kind:
        any_of = field(schema, "anyOf")
        if any_of:
            return _from_schema(any_of[0], rng, depth + 1)
        kind = "object" if field(schema, "properties") else "string"
    if kind == "object":
        props = field(schema, "properties") or {}
        return {name: _from_schema(sub, rng, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [
            _from_schema(field(schema, "items"), rng, depth + 1) for _ in range(rng.randint(1, 3))
        ]
    if kind == "integer":
        return rng.randint(0, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))


def _candidate_text(
    rng: random.Random, config: Mapping[str, Any], *, max_tokens: int | None
) -> Candidate:
    mime = field(config, "responseMimeType")
    if mime == "application/json":
        schema = field(config, "responseJsonSchema") or field(config, "responseSchema")
        value = _from_schema(schema, rng) if schema else {"answer": _prose(rng, 12)}
        text = json.dumps(value, ensure_ascii=False)
        tokens = estimate_text_tokens(text)
    else:
        text, tokens = _counted_prose(rng, 12 + rng.randrange(60))
    if max_tokens is not None and tokens > max_tokens:
        text = truncate_to_tokens(text, max_tokens)
        return Candidate(text, estimate_text_tokens(text), "MAX_TOKENS")
    return Candidate(text, tokens, "STOP")


def generate(
    *,
    model: str,
    contents: Sequence[Mapping[str, Any]],
    system: Mapping[str, Any] | None = None,
    tools: Any = None,
    config: Mapping[str, Any] | None = None,
    cached: Sequence[Mapping[str, Any]] = (),
    cached_system: Mapping[str, Any] | None = None,
    cached_tokens: int = 0,
) -> Generation:
    """The deterministic answer to a request (with the cached prefix, if any)."""
    config = config or {}
    prompt = prompt_text([*cached, *contents], cached_system or system)
    count = int(field(config, "candidateCount") or 1)
    max_tokens = field(config, "maxOutputTokens")
    candidates = tuple(
        _candidate_text(_rng(model, prompt, str(i)), config, max_tokens=max_tokens)
        for i in range(count)
    )
    prompt_tokens = request_tokens(contents, system, tools) + cached_tokens
    return Generation(candidates, prompt_tokens, cached_tokens)


def usage_metadata(generation: Generation) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": generation.prompt_tokens,
        "candidatesTokenCount": generation.output_tokens,
        "totalTokenCount": generation.prompt_tokens + generation.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": generation.prompt_tokens}],
    }
    if generation.cached_tokens:
        usage["cachedContentTokenCount"] = generation.cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": generation.cached_tokens}]
    return usage


def _candidate_json(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": index}
    if finish_reason is not None:
        out["finishReason"] = finish_reason
    return out


def response_json(generation: Generation, *, model: str, response_id: str) -> dict[str, Any]:
    """A whole GenerateContentResponse."""
    return {
        "candidates": [
            _candidate_json(i, c.text, c.finish_reason) for i, c in enumerate(generation.candidates)
        ],
        "usageMetadata": usage_metadata(generation),
        "modelVersion": model,
        "responseId": response_id,
    }


def split_for_stream(
    generation: Generation, *, model: str, response_id: str, chunk_tokens: int
) -> Iterator[dict[str, Any]]:
    """The stream of GenerateContentResponse chunks; finishReason and usage on the last.

    Candidates stream side by side: chunk k carries the k-th slice of each candidate.
    """
    size = chunk_tokens * CHARS_PER_TOKEN
    slices = [
        [c.text[i : i + size] for i in range(0, len(c.text), size)] or [""]
        for c in generation.candidates
    ]
    total = max(len(s) for s in slices)
    for k in range(total):
        last = k == total - 1
        candidates = []
        for index, (pieces, cand) in enumerate(zip(slices, generation.candidates, strict=True)):
            if k < len(pieces):
                candidates.append(
                    _candidate_json(index, pieces[k], cand.finish_reason if last else None)
                )
            elif last:
                candidates.append(_candidate_json(index, "", cand.finish_reason))
        chunk: dict[str, Any] = {
            "candidates": candidates,
            "modelVersion": model,
            "responseId": response_id,
        }
        if last:
            chunk["usageMetadata"] = usage_metadata(generation)
        yield chunk
