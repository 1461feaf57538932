"""A request the API would refuse for its size, sent as several and answered as one.

batchEmbedContents takes at most 100 items. A caller asking for more (the SDK sends
every text of `models.embed_content` in one batch) gets its batch cut into parts of
at most 100, each sent through the guarded path as a call of its own (paced by its
items, retried, answered by a fallback where one may), and one answer with every
embedding in the order asked.
"""

from __future__ import annotations

import httpx

from gemini_guard.call.http import embed_parts, joined_embeddings

__all__ = ["joined_response", "part_requests"]

_MODEL_HEADER = "x-gemini-guard-model"
_ATTEMPTS_HEADER = "x-gemini-guard-attempts"


def part_requests(request: httpx.Request, body: bytes) -> list[httpx.Request] | None:
    """The parts to send instead of `request` (None: send it as it is)."""
    if request.method != "POST":
        return None
    parts = embed_parts(request.url.path, body)
    if parts is None:
        return None
    headers = request.headers.copy()
    headers.pop("content-length", None)
    return [
        httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=part,
            extensions=dict(request.extensions),
        )
        for part in parts
    ]


def joined_response(request: httpx.Request, answers: list[httpx.Response]) -> httpx.Response:
    """One answer for the parts' answers (all succeeded: a failed part raised): the
    embeddings in order, the last part's headers, the attempts of all parts."""
    last = answers[-1]
    headers = [
        (k, v)
        for k, v in last.headers.multi_items()
        if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        and k.lower() != _ATTEMPTS_HEADER
    ]
    attempts = sum(int(a.headers.get(_ATTEMPTS_HEADER, "0") or 0) for a in answers)
    headers.append((_ATTEMPTS_HEADER, str(attempts)))
    content = joined_embeddings([a.content for a in answers])
    return httpx.Response(last.status_code, headers=headers, content=content, request=request)
