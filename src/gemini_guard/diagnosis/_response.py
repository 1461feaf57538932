"""Quiet failures: a 200 answer that carries no usable output, and why.

The Gemini API reports many failures inside a successful response: the prompt was
blocked (`promptFeedback.blockReason`), the candidate was stopped for safety,
recitation or a malformed function call (`finishReason`), there is no candidate at
all, the text is empty although the model said STOP, or the whole output budget went
to thinking (`MAX_TOKENS`, no visible text, `usageMetadata.thoughtsTokenCount`).

`diagnose_response` reads a response (the SDK's `GenerateContentResponse`, its JSON
body as text, bytes or a dict, or the list of chunks a non-SSE stream returns) and
gives a `Diagnosis` of what is wrong, or None when the response is usable. Field
names are read in camelCase (the wire) and snake_case (the SDK's `model_dump()`).
Pure: nothing here does I/O, and nothing raises on a malformed response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gemini_guard.diagnosis._model import Category, Diagnosis
from gemini_guard.diagnosis._redact import redact

__all__ = ["BLOCKING_FINISH_REASONS", "diagnose_response", "looks_like_response"]

# finishReason values that mean "stopped by a filter": the same input is blocked again.
BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "LANGUAGE",
    }
)
# Finish reasons after which the candidate's content is a normal answer.
_NORMAL_FINISH = frozenset({"STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED", ""})
_RESPONSE_KEYS = frozenset(
    {"candidates", "promptFeedback", "prompt_feedback", "usageMetadata", "usage_metadata"}
)
# Parts that are output a caller can use, besides non-thought text.
_PAYLOAD_PARTS = (
    "functionCall",
    "function_call",
    "inlineData",
    "inline_data",
    "fileData",
    "file_data",
    "executableCode",
    "executable_code",
    "codeExecutionResult",
    "code_execution_result",
)
_MAX_CHUNKS = 10_000


def _get(obj: Any, camel: str) -> Any:
    """`obj[camel]`, or its snake_case spelling; None when absent or `obj` is no mapping."""
    if not isinstance(obj, Mapping):
        return None
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


def _enum_name(value: Any) -> str:
    """An enum as its wire name: "SAFETY" from "SAFETY", FinishReason.SAFETY or its value."""
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    value_attr = getattr(value, "value", None)
    if isinstance(value_attr, str):
        return value_attr
    return value if isinstance(value, str) else ""


def _as_mapping(response: object) -> Mapping[str, Any] | None:
    """The response as a mapping: parsed JSON, a dict, an SDK object, or merged chunks."""
    if isinstance(response, bytes | bytearray | memoryview):
        response = bytes(response).decode("utf-8", "replace")
    if isinstance(response, str):
        text = response.strip()
        if not text or text[0] not in "{[":
            return None
        try:
            response = json.loads(text)
        except (ValueError, RecursionError):
            return None
    if isinstance(response, Mapping):
        return response
    if isinstance(response, Sequence) and not isinstance(response, str):
        chunks = [c for c in list(response)[:_MAX_CHUNKS] if isinstance(c, Mapping)]
        if chunks and len(chunks) == len(response):
            return _merge_chunks(chunks)
        return None
    dump = getattr(response, "model_dump", None)
    names = {cls.__name__ for cls in type(response).__mro__}
    if callable(dump) and "GenerateContentResponse" in names:
        dumped = dump(mode="json", exclude_none=True)
        return dumped if isinstance(dumped, Mapping) else None
    return None


_SDK_PAYLOAD_PARTS = tuple(name for name in _PAYLOAD_PARTS if "_" in name)


def plainly_usable(response: object) -> bool:
    """True when an SDK response object is plainly a usable answer (the usual case),
    read from its attributes without converting it: a candidate that ended normally
    with visible text or a payload, and no prompt block. False means "ask
    `diagnose_response`", which converts the whole object (far slower)."""
    try:
        feedback = getattr(response, "prompt_feedback", None)
        if feedback is not None and getattr(feedback, "block_reason", None):
            return False
        for candidate in getattr(response, "candidates", None) or ():
            finish = candidate.finish_reason
            if _enum_name(finish) not in _NORMAL_FINISH:
                continue
            content = candidate.content
            for part in (content.parts or ()) if content is not None else ():
                text = part.text
                if text and part.thought is not True and text.strip():
                    return True
                if any(getattr(part, name, None) is not None for name in _SDK_PAYLOAD_PARTS):
                    return True
        return False
    except Exception:  # an unexpected shape: let the full reading decide
        return False


def looks_like_response(value: object) -> bool:
    """True for a GenerateContentResponse in any accepted form (and not an error body)."""
    try:
        found = _as_mapping(value)
    except Exception:
        return False
    return found is not None and "error" not in found and bool(_RESPONSE_KEYS & set(found))


def _merge_chunks(chunks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A stream's chunks as one response: parts joined per candidate, the last finishReason."""
    merged: dict[str, Any] = {}
    candidates: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key in ("promptFeedback", "usageMetadata", "modelVersion"):
            if _get(chunk, key) is not None:
                merged[key] = _get(chunk, key)
        for position, cand in enumerate(_get(chunk, "candidates") or []):
            if not isinstance(cand, Mapping):
                continue
            index = _get(cand, "index")
            slot = candidates.setdefault(
                index if isinstance(index, int) else position, {"content": {"parts": []}}
            )
            parts = _get(_get(cand, "content"), "parts")
            if isinstance(parts, list):
                slot["content"]["parts"].extend(parts)
            for key in ("finishReason", "finishMessage", "safetyRatings"):
                if _get(cand, key) is not None:
                    slot[key] = _get(cand, key)
    if candidates or any("candidates" in c for c in chunks):
        merged["candidates"] = [candidates[i] for i in sorted(candidates)]
    return merged


@dataclass(frozen=True, slots=True)
class _Candidate:
    finish: str
    visible_text: str
    has_payload: bool
    has_thought: bool
    finish_message: str
    flagged: tuple[str, ...]  # safety categories rated blocked or high


def _flagged(rating: Any) -> bool:
    return _get(rating, "blocked") is True or _enum_name(_get(rating, "probability")) == "HIGH"


def _read_candidate(cand: Any) -> _Candidate:
    parts = _get(_get(cand, "content"), "parts")
    texts: list[str] = []
    payload = thought = False
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping):
            continue
        text = _get(part, "text")
        if _get(part, "thought") is True:
            thought = True
        elif isinstance(text, str):
            texts.append(text)
        if any(part.get(name) is not None for name in _PAYLOAD_PARTS):
            payload = True
    flagged: list[str] = []
    ratings = _get(cand, "safetyRatings")
    for rating in ratings if isinstance(ratings, list) else []:
        if _flagged(rating):
            flagged.append(_enum_name(_get(rating, "category")).removeprefix("HARM_CATEGORY_"))
    message = _get(cand, "finishMessage")
    return _Candidate(
        finish=_enum_name(_get(cand, "finishReason")),
        visible_text="".join(texts),
        has_payload=payload,
        has_thought=thought,
        finish_message=message if isinstance(message, str) else "",
        flagged=tuple(flagged),
    )


def _usable(c: _Candidate) -> bool:
    return c.finish in _NORMAL_FINISH and (bool(c.visible_text.strip()) or c.has_payload)


def _count(usage: Any, name: str) -> int | None:
    value = _get(usage, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _diagnosis(category: Category, reason: str | None, message: str, retryable: bool) -> Diagnosis:
    return Diagnosis(
        http_status=200,
        grpc_status=None,
        reason=reason or None,
        message=redact(message[:2000]),
        category=category,
        retryable=retryable,
    )


def _prompt_blocked(feedback: Any) -> Diagnosis | None:
    reason = _enum_name(_get(feedback, "blockReason"))
    if not reason or reason == "BLOCKED_REASON_UNSPECIFIED":
        return None
    words = f"The prompt was blocked (promptFeedback.blockReason {reason})"
    detail = _get(feedback, "blockReasonMessage")
    if isinstance(detail, str) and detail:
        words += f": {detail}"
    flagged = [
        _enum_name(_get(r, "category")).removeprefix("HARM_CATEGORY_")
        for r in _get(feedback, "safetyRatings") or []
        if _flagged(r)
    ]
    if flagged:
        words += f"; flagged: {', '.join(flagged)}"
    return _diagnosis(Category.PROMPT_BLOCKED, reason, words + ".", False)


def _candidate_problem(c: _Candidate, usage: Any) -> Diagnosis:
    said = f" ({c.finish_message})" if c.finish_message else ""
    if c.finish in BLOCKING_FINISH_REASONS:
        flagged = f"; flagged: {', '.join(c.flagged)}" if c.flagged else ""
        return _diagnosis(
            Category.RESPONSE_BLOCKED,
            c.finish,
            f"The answer was stopped by finishReason {c.finish}{said}{flagged}.",
            False,
        )
    if c.finish in {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}:
        return _diagnosis(
            Category.MALFORMED_FUNCTION_CALL,
            c.finish,
            f"The model produced a function call the API could not accept "
            f"(finishReason {c.finish}){said}.",
            True,
        )
    thoughts = _count(usage, "thoughtsTokenCount")
    if c.finish == "MAX_TOKENS" and (c.has_thought or (thoughts or 0) > 0):
        output = _count(usage, "candidatesTokenCount")
        used = f"thoughtsTokenCount {thoughts}" if thoughts is not None else "no thought count"
        return _diagnosis(
            Category.THINKING_EXHAUSTED,
            "MAX_TOKENS",
            f"MAX_TOKENS with no visible text: {used}, candidatesTokenCount {output or 0}. "
            "The output budget went to thinking.",
            False,
        )
    if c.finish in _NORMAL_FINISH:
        return _diagnosis(
            Category.EMPTY_RESPONSE,
            c.finish or None,
            f"The candidate has no text (finishReason {c.finish or 'missing'}).",
            True,
        )
    return _diagnosis(
        Category.GENERATION_STOPPED,
        c.finish,
        f"The generation stopped with finishReason {c.finish}{said}"
        + (" and no visible text." if not c.visible_text.strip() else "."),
        True,
    )


def diagnose_response(response: object) -> Diagnosis | None:
    """What is wrong with a 200 answer, or None when it is usable. Never raises.

    `response` is a google-genai `GenerateContentResponse`, its JSON body (str, bytes
    or dict), or the list of chunks of a stream. A response with at least one candidate
    that ended normally (STOP, MAX_TOKENS) with visible text or a function call is
    usable; a MAX_TOKENS answer with some text is a truncated answer, not a failure.
    Something that is no response at all also gives None; use `looks_like_response`
    to tell the two apart.
    """
    try:
        body = _as_mapping(response)
        if body is None or "error" in body:
            return None
        blocked = _prompt_blocked(_get(body, "promptFeedback"))
        if blocked is not None:
            return blocked
        raw = _get(body, "candidates")
        listed = raw if isinstance(raw, list) else []
        candidates = [_read_candidate(c) for c in listed if isinstance(c, Mapping)]
        if not candidates:
            return _diagnosis(
                Category.EMPTY_RESPONSE,
                None,
                "The response has no candidates and no block reason.",
                True,
            )
        if any(_usable(c) for c in candidates):
            return None
        return _candidate_problem(candidates[0], _get(body, "usageMetadata"))
    except Exception:  # a malformed response must not make diagnosis raise
        return None
