"""Gemini's OpenAI-compatible surface, emulated: `/{version}/openai/chat/completions`
(streaming too) and `/{version}/openai/models`.

The OpenAI SDK (and LiteLLM, and many tools) reach Gemini with
`base_url=".../v1beta/openai/"` and `Authorization: Bearer <key>`. Here each request
is translated into the Gemini API request it stands for and handed to the emulator's
own route, so quotas, faults, latency and the answer are the emulator's one
implementation; the reply is translated back on its way out:
- a `GenerateContentResponse` becomes a `chat.completion` (or, streamed, SSE
  `chat.completion.chunk`s closed by `data: [DONE]`);
- an error keeps its status and Gemini body, wrapped in a one-element list
  (`[{"error": {...}}]`), as the real compatibility layer sends it;
- faults that cut a connection or stall a stream act on the same connection.
Only text is translated (system, user and assistant messages; the sampling fields);
a field the layer does not take is a 400 naming it, as on the real service.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.error_bodies import ErrorReply

if TYPE_CHECKING:
    from gemini_guard.emulator.app import Emulator

__all__ = ["OpenAISurface", "finish_reason"]

# The request fields translated (or accepted and ignored, as documented per field).
_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "reasoning_effort",  # accepted; the emulator's thinking is not tunable this way
        "user",  # accepted and ignored, as by the real layer
    }
)
_ROLES = {"user": "user", "assistant": "model"}
_SYSTEM_ROLES = frozenset({"system", "developer"})
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}


def finish_reason(gemini: str | None) -> str | None:
    """OpenAI's finish_reason for a Gemini finishReason (None while streaming)."""
    if gemini is None:
        return None
    return _FINISH.get(gemini, "stop")


class _Refused(Exception):
    def __init__(self, reply: ErrorReply) -> None:
        self.reply = reply


def _wrapped(reply: ErrorReply) -> Response:
    """A Gemini error as the compatibility layer sends it: inside a one-element list."""
    body = [reply.body] if isinstance(reply.body, dict) else reply.body
    return Response(
        json.dumps(body, indent=2) if isinstance(body, list) else body,
        status_code=reply.status,
        media_type=reply.content_type,
    )


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise _Refused(
                    error_bodies.invalid_argument(
                        f"{where}.content[{index}]: only text parts are emulated "
                        '({"type": "text", "text": ...})'
                    )
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise _Refused(error_bodies.invalid_argument(f"{where}.content must be a string or a list"))


def gemini_request(body: Any) -> tuple[str, bool, bool, dict[str, Any]]:
    """(model, stream, include_usage, the generateContent body) for a chat request."""
    if not isinstance(body, Mapping):
        raise _Refused(error_bodies.invalid_json("The request body must be a JSON object."))
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _Refused(error_bodies.unknown_field([(name, "") for name in unknown]))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Refused(error_bodies.invalid_argument("model is required"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Refused(error_bodies.invalid_argument("messages must be a non-empty list"))
    system: list[dict[str, str]] = []
    contents: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role") if isinstance(message, Mapping) else None
        if role in _SYSTEM_ROLES:
            system.append({"text": _text_of(message.get("content"), where)})
        elif role in _ROLES:
            text = _text_of(message.get("content"), where)
            contents.append({"role": _ROLES[role], "parts": [{"text": text}]})
        else:
            raise _Refused(
                error_bodies.invalid_argument(
                    f"{where}.role {role!r} is not emulated (system, developer, user, assistant)"
                )
            )
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("max_tokens", "maxOutputTokens"),
        ("max_completion_tokens", "maxOutputTokens"),
        ("n", "candidateCount"),
        ("seed", "seed"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    stop = body.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    gemini: dict[str, Any] = {"contents": contents}
    if system:
        gemini["systemInstruction"] = {"parts": system}
    if config:
        gemini["generationConfig"] = config
    options = body.get("stream_options")
    include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
    return model, bool(body.get("stream")), include_usage, gemini


class OpenAISurface:
    """The OpenAI-compatible routes of one `Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    def routes(self) -> list[Route]:
        return [
            Route("/{version}/openai/chat/completions", self._chat, methods=["POST"]),
            Route("/{version}/openai/models", self._models, methods=["GET"]),
        ]

    def _inner(
        self, request: Request, *, path: str, body: bytes | None, query: str = ""
    ) -> Request:
        """The Gemini API request this one stands for: its key in x-goog-api-key."""
        headers = [
            (name, value)
            for name, value in request.scope["headers"]
            if name not in (b"authorization", b"content-length", b"x-goog-api-key")
        ]
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            headers.append((b"x-goog-api-key", token.strip().encode("latin-1")))
        if body is not None:
            headers.append((b"content-length", str(len(body)).encode()))
        version = request.path_params["version"]
        scope = dict(request.scope)
        scope.update(
            path=f"/{version}/{path}",
            raw_path=f"/{version}/{path}".encode(),
            query_string=query.encode(),
            headers=headers,
        )
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if body is not None and not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await request.receive()

        scope["path_params"] = {"version": version, "rest": path.removeprefix("models/")}
        return Request(scope, receive)

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError as exc:
            return _wrapped(error_bodies.invalid_json(str(exc)))
        try:
            model, stream, include_usage, gemini = gemini_request(parsed)
        except _Refused as refused:
            return _wrapped(refused.reply)
        name = model.removeprefix("models/")
        action = "streamGenerateContent" if stream else "generateContent"
        inner = self._inner(
            request,
            path=f"models/{name}:{action}",
            body=json.dumps(gemini).encode(),
            query="alt=sse" if stream else "",
        )
        reply = await self._emulator.dispatch_model_request(inner)
        created = int(self._emulator.clock.time())
        return _Translated(reply, model=model, created=created, include_usage=include_usage)

    async def _models(self, request: Request) -> Response:
        inner = self._inner(request, path="models", body=None, query="pageSize=1000")
        reply = await self._emulator.list_models(inner)
        return _Translated(reply, model="", created=0, include_usage=False, listing=True)


def _completion(body: Mapping[str, Any], *, model: str, created: int) -> dict[str, Any]:
    choices = []
    for position, candidate in enumerate(body.get("candidates") or ()):
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": {"role": "assistant", "content": _candidate_text(candidate)},
                "finish_reason": finish_reason(candidate.get("finishReason")) or "stop",
            }
        )
    out: dict[str, Any] = {
        "id": body.get("responseId", ""),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    usage = _usage(body)
    if usage is not None:
        out["usage"] = usage
    return out


def _chunk(
    body: Mapping[str, Any], *, model: str, created: int, include_usage: bool
) -> dict[str, Any]:
    choices = []
    for position, candidate in enumerate(body.get("candidates") or ()):
        choices.append(
            {
                "index": candidate.get("index", position),
                "delta": {"role": "assistant", "content": _candidate_text(candidate)},
                "finish_reason": finish_reason(candidate.get("finishReason")),
            }
        )
    out: dict[str, Any] = {
        "id": body.get("responseId", ""),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    usage = _usage(body) if include_usage else None
    if usage is not None:
        out["usage"] = usage
    return out


def _candidate_text(candidate: Mapping[str, Any]) -> str:
    content = candidate.get("content") or {}
    return "".join(
        str(part.get("text", ""))
        for part in content.get("parts") or ()
        if isinstance(part, Mapping) and not part.get("thought")
    )


def _usage(body: Mapping[str, Any]) -> dict[str, int] | None:
    meta = body.get("usageMetadata")
    if not isinstance(meta, Mapping):
        return None
    prompt = int(meta.get("promptTokenCount", 0))
    completion = int(meta.get("candidatesTokenCount", 0)) + int(meta.get("thoughtsTokenCount", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(meta.get("totalTokenCount", prompt + completion)),
    }


def _models_list(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model["name"], "object": "model", "created": 0, "owned_by": "google"}
            for model in body.get("models") or ()
        ],
    }


class _Translated(Response):
    """The Gemini route's reply, translated as it goes out (streams frame by frame)."""

    def __init__(
        self,
        inner: Response,
        *,
        model: str,
        created: int,
        include_usage: bool,
        listing: bool = False,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._listing = listing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        streaming = False
        collected = bytearray()
        pending = bytearray()

        async def relay(message: Message) -> None:
            nonlocal start, streaming
            if message["type"] == "http.response.start":
                start = message
                headers = dict(message.get("headers", ()))
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
                if streaming:
                    await send(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            if not streaming:
                collected.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_whole(start, bytes(collected), send)
                return
            pending.extend(message.get("body", b""))
            while b"\r\n\r\n" in pending:
                frame, _, rest = bytes(pending).partition(b"\r\n\r\n")
                pending[:] = rest
                await send(
                    {"type": "http.response.body", "body": self._frame(frame), "more_body": True}
                )
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

        await self._inner(scope, receive, relay)

    def _frame(self, frame: bytes) -> bytes:
        data = json.loads(frame.removeprefix(b"data: "))
        if "error" in data:  # an error inside a started stream passes as it came
            out: Any = data
        else:
            out = _chunk(
                data, model=self._model, created=self._created, include_usage=self._include_usage
            )
        return b"data: " + json.dumps(out, separators=(",", ":")).encode() + b"\n\n"

    async def _send_whole(self, start: Message | None, body: bytes, send: Send) -> None:
        status = int(start["status"]) if start is not None else 500
        headers = [
            (name, value)
            for name, value in (start.get("headers", ()) if start is not None else ())
            if name.lower() != b"content-length"
        ]
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None  # an HTML page or a cut body: passed on as it is
        if parsed is not None:
            if status >= 400 and isinstance(parsed, dict):
                parsed = [parsed]
            elif status == 200 and self._listing:
                parsed = _models_list(parsed)
            elif status == 200 and isinstance(parsed, dict):
                parsed = _completion(parsed, model=self._model, created=self._created)
            body = json.dumps(parsed).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
