"""The request path's common ground: a Gemini request as HTTP, and what the path reads
from it.

Every entry point ends up here with an HTTP request (method, path with the model in
it, headers, JSON body): the SDK through `guard.client`'s transport, any language
through the gateway. This module knows the API's routes well enough to say which
model a request is for, what kind of call it is (paced or not, streamed or not,
whether another model may answer it), and how to send the same request to another
model: in the path (`models/{m}:action`, on the Gemini API and on Vertex AI) or in the
JSON body (the OpenAI-compatible surface).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from gemini_guard.tiers import count_tokens_quota
from gemini_guard.tokens import estimate_text_tokens, estimate_tokens

__all__ = [
    "MAX_EMBED_BATCH",
    "Route",
    "RouteKind",
    "bare_model",
    "config_of",
    "embed_items",
    "embed_parts",
    "estimated_input_tokens",
    "input_tokens_of_body",
    "input_tokens_of_json",
    "joined_embeddings",
    "location_of",
    "route_of",
    "shrunk_body",
    "streams",
    "vertex_host",
    "with_model",
]

RouteKind = Literal[
    "generate",  # generateContent: paced, falls back
    "stream",  # streamGenerateContent: paced, falls back before the first byte
    "count",  # countTokens: its own model only, paced by its own quota (see Route.meter)
    "embed",  # embedContent / batchEmbedContents: paced, its own model only
    "openai_chat",  # the OpenAI-compatible chat: paced, falls back (model in the body)
    "other",  # files, batches, cachedContents, model listings: retried only
]

# `.../models/{model}:{action}` on the Gemini API (`/v1beta/models/m:generateContent`)
# and on Vertex AI (`/v1/projects/p/locations/l/publishers/google/models/m:...`).
_MODEL_PATH = re.compile(r"^(?P<head>.*/models/)(?P<model>[^/:]+)(?::(?P<action>\w+))?$")
# On Vertex AI the location is part of the path too: a chain entry `model@location`
# (e.g. `gemini-2.5-pro@global`) moves a call to another location as well as model.
_VERTEX_PATH = re.compile(
    r"^(?P<head>.*/projects/[^/]+/locations/)(?P<location>[^/]+)"
    r"(?P<mid>/publishers/google/models/)(?P<model>[^/:]+)(?::(?P<action>\w+))?$"
)
_ACTIONS: dict[str, RouteKind] = {
    "generateContent": "generate",
    "streamGenerateContent": "stream",
    "countTokens": "count",
    "embedContent": "embed",
    "batchEmbedContents": "embed",
}


# The API's most items in one batchEmbedContents ("at most 100 requests can be in one
# batch"); a bigger batch is sent in parts (see `embed_parts`).
MAX_EMBED_BATCH = 100


@dataclass(frozen=True, slots=True)
class Route:
    kind: RouteKind
    model: str | None  # the model asked for (None: the call names none)
    label: str  # a name for breakers and logs when there is no model ("files", ...)

    @property
    def paced(self) -> bool:
        return self.kind in ("generate", "stream", "embed", "openai_chat")

    @property
    def meter(self) -> str | None:
        """The quota (and breaker) the call answers to when it is not its model's:
        countTokens has its own, and must not wait behind generation nor spend it."""
        if self.kind == "count" and self.model is not None:
            return count_tokens_quota(self.model)
        return None

    @property
    def falls_back(self) -> bool:
        return self.kind in ("generate", "stream", "openai_chat")

    @property
    def shrinks(self) -> bool:
        """Whether a retry after a deadline can ask for less (`shrunk_body`): only
        generateContent's body has a generationConfig; the embedding calls refuse one
        (400 "Unknown name"), and the OpenAI-compatible chat names its limits otherwise."""
        return self.kind in ("generate", "stream")

    @property
    def streamed(self) -> bool:
        return self.kind == "stream"


def route_of(method: str, path: str, body: Any) -> Route:
    """What `method path` (the URL's path, no query) asks for; `body` is its parsed JSON."""
    if path.endswith("/openai/chat/completions") and method == "POST":
        model = body.get("model") if isinstance(body, dict) else None
        name = model.removeprefix("models/") if isinstance(model, str) and model else None
        return Route("openai_chat", name, "openai")
    # Any other route is its method and path's alone: read once for each.
    route = _ROUTES.get((method, path))
    if route is None:
        if len(_ROUTES) >= _MOST_ROUTES:  # many distinct paths (files by name): start over
            _ROUTES.clear()
        route = _ROUTES[(method, path)] = _route_of_path(method, path)
    return route


_ROUTES: dict[tuple[str, str], Route] = {}
_MOST_ROUTES = 1024


def _route_of_path(method: str, path: str) -> Route:
    # The Vertex pattern only where a path names a location (the Gemini API's never do).
    vertex = _VERTEX_PATH.match(path) if "/locations/" in path else None
    if vertex is not None and method == "POST":
        kind = _ACTIONS.get(vertex["action"] or "")
        if kind is not None:
            # The request's own location goes unnamed, as a chain entry without one
            # stays there: `model@location` names only a move to another location.
            return Route(kind, vertex["model"], vertex["model"])
    match = _MODEL_PATH.match(path)
    if match is not None and method == "POST":
        kind = _ACTIONS.get(match["action"] or "")
        if kind is not None:
            return Route(kind, match["model"], match["model"])
    parts = [p for p in path.split("/") if p]
    label = next((p for p in parts[1:] if not p.startswith("v1")), "api")
    return Route("other", None, label.partition(":")[0])


def streams(route: Route, body: Any) -> bool:
    """Whether the answer comes as a stream of server-sent events."""
    if route.kind == "stream":
        return True
    return route.kind == "openai_chat" and isinstance(body, dict) and bool(body.get("stream"))


def with_model(path: str, body: bytes, route: Route, model: str) -> tuple[str, bytes]:
    """The same request for `model`: the path rewritten (Gemini, Vertex), or the JSON
    body's `model` (the OpenAI-compatible surface)."""
    if route.model is None or model == route.model:
        return path, body
    if route.kind == "openai_chat":
        parsed = json.loads(body)
        parsed["model"] = model
        return path, json.dumps(parsed).encode()
    name, _, location = model.partition("@")
    vertex = _VERTEX_PATH.match(path)
    if vertex is not None:
        action = f":{vertex['action']}" if vertex["action"] else ""
        where = location or vertex["location"]  # an entry without one stays put
        return f"{vertex['head']}{where}{vertex['mid']}{name}{action}", body
    match = _MODEL_PATH.match(path)
    if match is None:
        return path, body
    action = f":{match['action']}" if match["action"] else ""
    return f"{match['head']}{name}{action}", body


def estimated_input_tokens(route: Route, body: Any) -> int:
    """The input tokens a paced call reserves, estimated from its parsed JSON body: its
    contents and system instruction, or the items of an embedding batch."""
    if not isinstance(body, dict):
        return 0
    if route.kind == "embed":
        items = body.get("requests") or [body]
        return sum(estimate_tokens([i.get("content")]) for i in items)
    contents, system = body.get("contents"), body.get("systemInstruction")
    tokens = _text_tokens(contents)
    if tokens is None:
        tokens = estimate_tokens(contents)
    if system is not None:
        system_tokens = _text_tokens([system])
        tokens += estimate_tokens(system) if system_tokens is None else system_tokens
    return tokens


def _text_tokens(contents: Any) -> int | None:
    """`estimate_tokens(contents)` for the usual request, contents of text parts only,
    without walking every shape the general estimate accepts (None: another shape)."""
    if not isinstance(contents, list):
        return None
    tokens = 0
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            return None
        for part in parts:
            text = part.get("text") if isinstance(part, dict) and len(part) == 1 else None
            if not isinstance(text, str):
                return None
            tokens += estimate_text_tokens(text)
    return tokens


def embed_items(route: Route, body: Any) -> int:
    """How many requests the server counts a call as: each item of a
    batchEmbedContents counts against RPM and RPD, any other call is one."""
    if route.kind != "embed" or not isinstance(body, dict):
        return 1
    items = body.get("requests")
    return len(items) if isinstance(items, list) and items else 1


def embed_parts(path: str, body: bytes, *, most: int = MAX_EMBED_BATCH) -> list[bytes] | None:
    """A batchEmbedContents body of more than `most` items, as bodies of at most `most`
    in their order (None: the body goes as it is). The API refuses a bigger batch
    with a 400; its parts are separate calls, each paced, retried and answered."""
    if not path.endswith(":batchEmbedContents") or len(body) < most * 10:
        return None  # an item is more than ten bytes of JSON: no need to parse
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    items = parsed.get("requests") if isinstance(parsed, dict) else None
    if not isinstance(items, list) or len(items) <= most:
        return None
    rest = {k: v for k, v in parsed.items() if k != "requests"}
    return [
        json.dumps({**rest, "requests": items[at : at + most]}).encode()
        for at in range(0, len(items), most)
    ]


def joined_embeddings(answers: list[bytes]) -> bytes:
    """The answers of a batch's parts as one answer: their embeddings in order."""
    embeddings: list[Any] = []
    for answer in answers:
        parsed = json.loads(answer)
        if isinstance(parsed, dict):
            embeddings.extend(parsed.get("embeddings") or ())
    return json.dumps({"embeddings": embeddings}).encode()


def location_of(model: str) -> str | None:
    """The location a chain entry names (`gemini-2.5-pro@global`: "global")."""
    return model.partition("@")[2] or None


def vertex_host(host: str, location: str) -> str:
    """Vertex AI's host for `location`: `{location}-aiplatform.googleapis.com`, or
    `aiplatform.googleapis.com` for global. Any other host (a proxy, an emulator)
    serves every location itself and is kept."""
    if not host.endswith("aiplatform.googleapis.com"):
        return host
    return (
        "aiplatform.googleapis.com"
        if location == "global"
        else f"{location}-aiplatform.googleapis.com"
    )


def bare_model(model: str) -> str:
    """The model of a chain entry, without its location."""
    return model.partition("@")[0]


def config_of(body: Any) -> dict[str, Any] | None:
    """The SDK-shaped config of a generateContent body (camelCase keys, as the SDK's
    pydantic models accept them): generationConfig's fields and the request's others."""
    if not isinstance(body, dict):
        return None
    config: dict[str, Any] = dict(body.get("generationConfig") or {})
    for key in ("systemInstruction", "tools", "toolConfig", "safetySettings", "cachedContent"):
        if key in body:
            config[key] = body[key]
    return config or None


def input_tokens_of_body(body: bytes) -> int | None:
    """The prompt tokens an answer's JSON reports (None when it reports none)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return input_tokens_of_json(parsed)


def input_tokens_of_json(parsed: Any) -> int | None:
    """`input_tokens_of_body` for an answer's JSON already parsed."""
    if not isinstance(parsed, dict):
        return None
    meta = parsed.get("usageMetadata")
    if isinstance(meta, dict) and isinstance(meta.get("promptTokenCount"), int):
        return int(meta["promptTokenCount"])
    usage = parsed.get("usage")  # the OpenAI-compatible surface
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        return int(usage["prompt_tokens"])
    return None


_THINKING_2_5 = re.compile(r"gemini-2\.5")
_THINKING_LEVELS = re.compile(r"gemini-[3-9]")


def shrunk_body(body: bytes, model: str, *, max_output_tokens: int, thinking_budget: int) -> bytes:
    """The body with less thinking and a capped answer, for one more try after a 504
    (a deadline the model's thinking ran past)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict):
        return body
    config = dict(parsed.get("generationConfig") or {})
    own_cap = config.get("maxOutputTokens")
    config["maxOutputTokens"] = min(own_cap, max_output_tokens) if own_cap else max_output_tokens
    thinking = dict(config.get("thinkingConfig") or {})
    level = thinking.get("thinkingLevel", thinking.get("thinking_level"))
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    if level is not None or (budget is None and _THINKING_LEVELS.search(model)):
        thinking.pop("thinking_level", None)
        thinking["thinkingLevel"] = "LOW"
    elif budget is not None or _THINKING_2_5.search(model):
        thinking.pop("thinking_budget", None)
        # -1 asks for dynamic thinking; 0 turns it off (already the smallest).
        own = budget if isinstance(budget, int) else None
        thinking["thinkingBudget"] = (
            thinking_budget if own is None or own < 0 else min(own, thinking_budget)
        )
    config["thinkingConfig"] = thinking
    parsed["generationConfig"] = config
    return json.dumps(parsed).encode()
