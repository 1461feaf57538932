"""What the emulator's surfaces share: the account a request runs for, and how an
error reply becomes an HTTP response."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.responses import Response

from gemini_guard.emulator.error_bodies import ErrorReply

__all__ = ["VERTEX_ACCOUNT_KEY", "Account", "reply_response"]

# The ASGI scope key under which the Vertex surface (emulator/vertex.py) hands a
# request on with the account it authenticated by bearer token.
VERTEX_ACCOUNT_KEY = "gemini_guard.vertex_account"


@dataclass(frozen=True, slots=True)
class Account:
    project: str
    tier: str


def reply_response(reply: ErrorReply) -> Response:
    if isinstance(reply.body, str):
        return Response(
            reply.body,
            status_code=reply.status,
            media_type=reply.content_type,
            headers=reply.headers,
        )
    return Response(
        json.dumps(reply.body, indent=2),
        status_code=reply.status,
        media_type=reply.content_type,
        headers=reply.headers,
    )
