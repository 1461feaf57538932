"""Embeddings: `models/{m}:embedContent` and `:batchEmbedContents`, as the API takes them.

google-genai's `models.embed_content` posts to `:batchEmbedContents` on the Gemini API,
one item per text; each item counts as one request against RPM (a batch of 100 on a
100-RPM free tier leaves nothing for the next call), and a batch holds at most 100.
The vectors are deterministic: the same model, text, task type and size give the same
unit vector, and different texts give different ones, so a test can check that an
answer belongs to its question.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.error_bodies import ErrorReply
from gemini_guard.emulator.generate import request_tokens

__all__ = ["MAX_BATCH", "EmbedItem", "embedding_values", "parse_embed_request"]

MAX_BATCH = 100
# Each model's full vector size (a request may ask for fewer: outputDimensionality).
_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
_DEFAULT_DIMENSIONS = 768
_ITEM_FIELDS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
_TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)


@dataclass(frozen=True, slots=True)
class EmbedItem:
    text: str
    task_type: str
    dimensions: int
    tokens: int


def _text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return "".join(str(part.get("text", "")) for part in parts or () if isinstance(part, Mapping))


def _item(raw: Any, *, model: str, where: str) -> EmbedItem | ErrorReply:
    if not isinstance(raw, Mapping):
        return error_bodies.invalid_argument(f"{where} must be an object")
    unknown = sorted(set(raw) - _ITEM_FIELDS)
    if unknown:
        return error_bodies.unknown_field([(name, where) for name in unknown])
    named = raw.get("model")
    if named is not None and str(named).removeprefix("models/") != model:
        return error_bodies.invalid_argument(
            f"{where}.model: the model of every request ({named}) must be the model in the"
            f" URL (models/{model})."
        )
    content = raw.get("content")
    if not isinstance(content, Mapping) or not content.get("parts"):
        return error_bodies.invalid_argument(f"{where}.content: content is required")
    task = str(raw.get("taskType") or "TASK_TYPE_UNSPECIFIED")
    if task not in _TASK_TYPES:
        return error_bodies.invalid_value(
            f"Invalid value at '{where}.task_type' (type.googleapis.com/google.ai."
            f'generativelanguage.v1beta.TaskType), "{task}"',
            field_path=f"{where}.task_type",
        )
    full = _DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
    size = raw.get("outputDimensionality")
    if size is not None and (not isinstance(size, int) or not 1 <= size <= full):
        return error_bodies.invalid_argument(
            f"{where}.output_dimensionality must be between 1 and {full} for {model}"
        )
    return EmbedItem(
        text=_text(content),
        task_type=task,
        dimensions=size if isinstance(size, int) else full,
        tokens=request_tokens([content]),
    )


def parse_embed_request(body: Any, *, model: str, batch: bool) -> list[EmbedItem] | ErrorReply:
    """The items of an `embedContent` (one) or `batchEmbedContents` (up to 100) body."""
    if not isinstance(body, Mapping):
        return error_bodies.invalid_json("The request body must be a JSON object.")
    if not batch:
        one = _item(body, model=model, where="")
        return one if isinstance(one, ErrorReply) else [one]
    unknown = sorted(set(body) - {"requests"})
    if unknown:
        return error_bodies.unknown_field([(name, "") for name in unknown])
    requests = body.get("requests")
    if not isinstance(requests, Sequence) or isinstance(requests, str) or not requests:
        return error_bodies.invalid_argument(
            "* BatchEmbedContentsRequest.requests: requests is required"
        )
    if len(requests) > MAX_BATCH:
        return error_bodies.invalid_argument(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
        )
    items: list[EmbedItem] = []
    for index, raw in enumerate(requests):
        item = _item(raw, model=model, where=f"requests[{index}]")
        if isinstance(item, ErrorReply):
            return item
        items.append(item)
    return items


def embedding_values(model: str, item: EmbedItem) -> list[float]:
    """A deterministic unit vector for `item` (rounded: the API sends ~7 digits too)."""
    seed = hashlib.sha256(f"{model}\x1f{item.task_type}\x1f{item.text}".encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big"))
    raw = [rng.gauss(0.0, 1.0) for _ in range(item.dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 7) for v in raw]
