"""`Emulator`: the fake Gemini API as a Starlette ASGI app.

The REST surface the official SDKs use, under /v1, /v1beta and /v1alpha:
`models/{m}:generateContent`, `:streamGenerateContent` (SSE), `:countTokens`,
`:batchGenerateContent`, `:embedContent`, `:batchEmbedContents` (emulator/embed.py),
`batches[/{id}[:cancel]]`, `cachedContents[/{id}]`,
`models[/{m}]`, Gemini's OpenAI-compatible `openai/chat/completions` and
`openai/models` (emulator/openai.py), plus `GET /_emulator/stats` and `GET /_emulator/scenario`.

A request goes through the same gates as on the real service, in this order: key
(missing, invalid, leaked, region-blocked, out of credit), model, body (JSON, field
names, ranges), input size, quota (RPM, input TPM, RPD), then the scenario's faults
and latency, then the deterministic answer. All time comes from the injected clock;
all randomness from one `random.Random` seeded by the scenario.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gemini_guard.clock import Clock, SystemClock
from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.batches import BatchStore
from gemini_guard.emulator.caches import (
    DEFAULT_TTL,
    CachedContents,
    min_cache_tokens,
    parse_duration,
    parse_rfc3339,
)
from gemini_guard.emulator.embed import embedding_values, parse_embed_request
from gemini_guard.emulator.error_bodies import ErrorReply
from gemini_guard.emulator.faults import (
    QUIET_KINDS,
    REFUSING_FAULTS,
    STALL_KINDS,
    pick_fault,
    refusal,
    sample_latency,
)
from gemini_guard.emulator.generate import (
    Generation,
    generate,
    request_tokens,
    response_json,
    split_for_stream,
)
from gemini_guard.emulator.openai import OpenAISurface
from gemini_guard.emulator.quiet import quiet_response
from gemini_guard.emulator.quota import QuotaLedger, Violation
from gemini_guard.emulator.replies import VERTEX_ACCOUNT_KEY, Account, reply_response
from gemini_guard.emulator.request_body import (
    camel,
    field,
    normalize_count_tokens_request,
    normalize_generate_request,
)
from gemini_guard.emulator.request_json import (
    MAX_REQUEST_BYTES,
    check_field_types,
    parse_request_json,
    too_large,
)
from gemini_guard.emulator.scenario import Fault, FaultMethod, Scenario, load_scenario
from gemini_guard.emulator.stats import RequestRecord, Stats
from gemini_guard.emulator.vertex import VertexSurface
from gemini_guard.tiers import (
    COUNT_TOKENS_RPM,
    TIERS,
    Limits,
    count_tokens_quota,
    counted_model,
    load_models,
)

__all__ = ["API_VERSIONS", "VERTEX_ACCOUNT_KEY", "DroppedConnection", "Emulator"]

API_VERSIONS = ("v1", "v1beta", "v1alpha")
_log = logging.getLogger("gemini_guard.emulator")
_NO_PROJECT = "-"
_NO_MODEL = "-"
# Faults that strike inside a stream that has started, not instead of it.
_STREAM_KINDS = frozenset({"stream_error", "stream_drop"}) | STALL_KINDS


class DroppedConnection(ConnectionResetError):
    """Raised in-process (no socket to close) where the scenario drops the connection."""


_GENERATION_METHODS = (
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
)
_EMBEDDING_METHODS = ("embedContent", "batchEmbedContents", "countTokens")


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    input_token_limit: int
    output_token_limit: int
    methods: tuple[str, ...] = _GENERATION_METHODS

    @property
    def embeds(self) -> bool:
        return "embedContent" in self.methods


class _Reject(Exception):
    """Internal: stop handling a request and answer with `reply`."""

    def __init__(self, reply: ErrorReply) -> None:
        self.reply = reply


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


class Emulator:
    """A local Gemini API with real quotas, real error bodies and scripted faults.

    `scenario` is a built-in name ("free-tier", "healthy", "overload", ...), a path to
    a TOML file, a dict or a `Scenario`. `clock` drives quotas, faults' time windows,
    latency and batches (the system clock by default; a `FakeClock` in tests, a
    `ScaledClock` to rehearse a day in minutes). `log_path` appends one JSON line per
    request. Use `app` in-process (e.g. with `httpx.ASGITransport`) or `serve()` it.
    """

    def __init__(
        self,
        scenario: str | Path | Scenario | Mapping[str, Any] = "free-tier",
        *,
        clock: Clock | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.scenario = load_scenario(scenario)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._start = self.clock.monotonic()
        self._rng = random.Random(self.scenario.seed)
        # Faults by the method they strike: a request draws only for its own method's.
        self._faults: dict[str, tuple[Fault, ...]] = {
            method: tuple(f for f in self.scenario.faults if method in f.methods)
            for method in get_args(FaultMethod)
        }
        self._ids = itertools.count(1)
        self._ledger = QuotaLedger()
        self._stats = Stats(log_path=log_path)
        self._caches = CachedContents(seed=self.scenario.seed)
        self._batches = BatchStore(seed=self.scenario.seed)
        self._models = self._catalog()
        # Filled by `serve()`'s protocol: client address -> its socket transport, so a
        # "drop" fault can close the very connection a request came on.
        self.connections: dict[Any, asyncio.Transport] = {}
        self.app = Starlette(routes=self._routes())

    # -- public helpers ----------------------------------------------------------

    def elapsed(self) -> float:
        """Emulated seconds since this emulator started (the scenario's time axis)."""
        return self.clock.monotonic() - self._start

    def stats(self) -> dict[str, Any]:
        """Per project and model: requests, admitted, rejected by reason, tokens."""
        snap = self._stats.snapshot()
        snap["scenario"] = self.scenario.name
        snap["elapsed"] = round(self.elapsed(), 6)
        return snap

    def close(self) -> None:
        """Close the request log (if any)."""
        self._stats.close()

    def limits(self, model: str, tier: str) -> Limits | None:
        """The limits in force now for `model` on `tier`; None when unlimited."""
        if not self.scenario.quotas:
            return None
        values: dict[str, int | None] = {"rpm": None, "tpm": None, "rpd": None}
        shipped = load_models().get(model)
        counting = counted_model(model) is not None  # countTokens' own quota
        if counting and tier in TIERS:  # the Gemini API's tiers (not Vertex AI's)
            values["rpm"] = COUNT_TOKENS_RPM
        elif shipped is not None and tier in shipped.tiers:
            base = shipped.tiers[tier]
            values = {"rpm": base.rpm, "tpm": base.tpm, "rpd": base.rpd}
        override = self.scenario.limits.get(model, {}).get(tier)  # type: ignore[call-overload]
        if override is not None:
            if override.unlimited:
                return None
            for name in values:
                if getattr(override, name) is not None:
                    values[name] = getattr(override, name)
        elapsed = self.elapsed()
        for change in self.scenario.limit_changes:
            if change.at > elapsed:
                break
            named = change.model == model or (change.model == "*" and not counting)
            if named and change.tier in ("*", tier):
                for name in values:
                    if getattr(change, name) is not None:
                        values[name] = getattr(change, name)
        if all(v is None for v in values.values()):
            return None
        return Limits(rpm=values["rpm"], tpm=values["tpm"], rpd=values["rpd"])

    # -- plumbing ----------------------------------------------------------------

    def _catalog(self) -> dict[str, ServedModel]:
        models = {
            name: ServedModel(
                name,
                spec.input_token_limit,
                spec.output_token_limit,
                _GENERATION_METHODS if spec.can_generate else _EMBEDDING_METHODS,
            )
            for name, spec in load_models().items()
            if spec.can_generate or "embedContent" in spec.methods
        }
        for name, entry in self.scenario.models.items():
            models[name] = ServedModel(name, entry.input_token_limit, entry.output_token_limit)
        return models

    def _routes(self) -> list[Route]:
        return [
            *VertexSurface(self).routes(),
            *OpenAISurface(self).routes(),
            Route("/_emulator/stats", self._stats_endpoint, methods=["GET"]),
            Route("/_emulator/scenario", self._scenario_endpoint, methods=["GET"]),
            Route("/{version}/models", self._models_list, methods=["GET"]),
            Route("/{version}/models/{rest:path}", self._models_dispatch, methods=["GET", "POST"]),
            Route("/{version}/batches", self._batches_list, methods=["GET"]),
            Route(
                "/{version}/batches/{rest:path}",
                self._batches_dispatch,
                methods=["GET", "POST", "DELETE"],
            ),
            Route("/{version}/cachedContents", self._caches_root, methods=["GET", "POST"]),
            Route(
                "/{version}/cachedContents/{rest:path}",
                self._caches_item,
                methods=["GET", "PATCH", "DELETE"],
            ),
        ]

    def _record(
        self,
        account: Account | None,
        model: str,
        method: str,
        status: int,
        reason: str | None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
    ) -> None:
        self._stats.record(
            RequestRecord(
                wall=self.clock.time(),
                elapsed=self.elapsed(),
                project=account.project if account else _NO_PROJECT,
                model=model,
                method=method,
                status=status,
                reason=reason,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_tokens=cached_tokens,
            )
        )

    def _response_id(self) -> str:
        digest = hashlib.sha256(
            f"response:{self.scenario.seed}:{next(self._ids)}".encode()
        ).digest()
        return base64.urlsafe_b64encode(digest[:17]).decode().rstrip("=")

    def _authenticate(self, request: Request) -> Account:
        vertex = request.scope.get(VERTEX_ACCOUNT_KEY)
        if isinstance(vertex, Account):
            return vertex
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise _Reject(error_bodies.missing_key())
        spec = self.scenario.keys.get(key)
        if spec is None:
            if not self.scenario.accept_unknown_keys:
                raise _Reject(error_bodies.api_key_invalid())
            # Its own project, named by a fingerprint: the key itself is never recorded.
            project = "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]
            return Account(project, self.scenario.default_tier)
        account = Account(spec.project, spec.tier)
        if spec.state == "invalid":
            raise _Reject(error_bodies.api_key_invalid())
        if spec.state == "leaked":
            raise _Reject(error_bodies.key_leaked())
        if spec.state == "echo":  # a test fault (see scenario.KeyState)
            raise _Reject(error_bodies.key_echoed(key))
        if spec.state == "region_blocked":
            raise _Reject(error_bodies.location_unsupported())
        if spec.state == "credit_depleted":
            raise _Reject(error_bodies.credit_depleted())
        return account

    @staticmethod
    def _version(request: Request) -> str:
        version = str(request.path_params["version"])
        if version not in API_VERSIONS:
            raise _Reject(error_bodies.not_found(f"API version {version} is not supported."))
        return version

    def _model(self, name: str, *, version: str, method: str) -> ServedModel:
        model = self._models.get(name.removeprefix("models/"))
        supported = () if model is None else model.methods
        if "generateContent" in supported:
            supported = (*supported, "streamGenerateContent")
        if model is None or method not in supported:
            raise _Reject(
                error_bodies.model_not_found(
                    name.removeprefix("models/"), version=version, method=method
                )
            )
        return model

    @staticmethod
    async def _body(request: Request) -> Any:
        """The parsed JSON body, or the 400 the real API gives (size, nesting, NaN...)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            raise _Reject(too_large())
        raw = bytearray()
        async for piece in request.stream():
            raw += piece
            if len(raw) > MAX_REQUEST_BYTES:
                raise _Reject(too_large())
        parsed = parse_request_json(bytes(raw))
        if isinstance(parsed, ErrorReply):
            raise _Reject(parsed)
        return parsed

    async def _guarded(
        self,
        request: Request,
        method: str,
        handler: Callable[[Account | None, list[str]], Awaitable[Response]],
        model_hint: str = _NO_MODEL,
    ) -> Response:
        """Run `handler`, turning a `_Reject` into its error reply (and a stats record)."""
        account: Account | None = None
        model_box = [model_hint]
        try:
            self._version(request)
            account = self._authenticate(request)
            return await handler(account, model_box)
        except _Reject as rejected:
            reply = rejected.reply
            self._record(account, model_box[0], method, reply.status, reply.reason)
            return reply_response(reply)
        except ClientDisconnect:
            # An ordinary event (a client timed out or was stopped): one line, no traceback.
            client = request.client
            _log.info(
                "client %s disconnected before sending the whole request (%s)",
                f"{client.host}:{client.port}" if client else "?",
                method,
            )
            self._record(account, model_box[0], method, 499, "client_disconnected")
            return Response(status_code=499)

    # -- for the Vertex AI surface (emulator/vertex.py) ----------------------------

    def knows_model(self, name: str) -> bool:
        return name.removeprefix("models/") in self._models

    def record_rejection(
        self, account: Account | None, model: str, method: str, reply: ErrorReply
    ) -> None:
        self._record(account, model, method, reply.status, reply.reason)

    async def dispatch_model_request(self, request: Request) -> Response:
        """Handle `request` as the Gemini API route `/{version}/models/{rest}` would."""
        return await self._models_dispatch(request)

    async def list_models(self, request: Request) -> Response:
        """Handle `request` as the Gemini API route `GET /{version}/models` would."""
        return await self._models_list(request)

    # -- /_emulator --------------------------------------------------------------

    async def _stats_endpoint(self, request: Request) -> Response:
        return _json(self.stats())

    async def _scenario_endpoint(self, request: Request) -> Response:
        data = self.scenario.model_dump(mode="json")
        # Never echo keys: only which projects and tiers exist.
        data["keys"] = sorted(
            {f"{spec.project} ({spec.tier}, {spec.state})" for spec in self.scenario.keys.values()}
        )
        data["elapsed"] = round(self.elapsed(), 6)
        return _json(data)

    # -- models ------------------------------------------------------------------

    def _model_json(self, model: ServedModel) -> dict[str, Any]:
        return {
            "name": f"models/{model.name}",
            "version": "001",
            "displayName": model.name.replace("-", " ").title(),
            "description": f"{model.name}, served by the gemini-guard emulator.",
            "inputTokenLimit": model.input_token_limit,
            "outputTokenLimit": model.output_token_limit,
            "supportedGenerationMethods": list(model.methods),
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": True,
        }

    async def _models_list(self, request: Request) -> Response:
        async def handle(account: Account | None, model_box: list[str]) -> Response:
            items = [self._model_json(m) for m in self._models.values()]
            body = _page("models", items, request)
            self._record(account, _NO_MODEL, "models.list", 200, None)
            return _json(body)

        return await self._guarded(request, "models.list", handle)

    async def _models_dispatch(self, request: Request) -> Response:
        rest = str(request.path_params["rest"])
        name, _, action = rest.partition(":")
        if request.method == "GET" and not action:
            return await self._models_get(request, name)
        if request.method == "POST":
            if action == "generateContent":
                return await self._generate(request, name, streaming=False)
            if action == "streamGenerateContent":
                return await self._generate(request, name, streaming=True)
            if action == "countTokens":
                return await self._count_tokens(request, name)
            if action == "batchGenerateContent":
                return await self._batch_create(request, name)
            if action in ("embedContent", "batchEmbedContents"):
                return await self._embed(request, name, batch=action == "batchEmbedContents")
        return reply_response(error_bodies.not_found(f"Method not found: models/{rest}"))

    async def _models_get(self, request: Request, name: str) -> Response:
        async def handle(account: Account | None, model_box: list[str]) -> Response:
            version = self._version(request)
            model_box[0] = name
            model = self._models.get(name)
            if model is None:
                raise _Reject(
                    error_bodies.not_found(f"models/{name} is not found for API version {version}.")
                )
            self._record(account, name, "models.get", 200, None)
            return _json(self._model_json(model))

        return await self._guarded(request, "models.get", handle, name)

    # -- generateContent / streamGenerateContent ---------------------------------

    def _resolve_cache(
        self, request_body: dict[str, Any], account: Account, model: str
    ) -> tuple[Any, int]:
        """The cache a request names (if any) and its tokens; rejects misuse."""
        name = request_body.get("cachedContent")
        if not name:
            return None, 0
        cache = self._caches.get(str(name), project=account.project, now=self.clock.time())
        if cache is None:
            raise _Reject(error_bodies.cache_not_found())
        if cache.model != f"models/{model}":
            raise _Reject(error_bodies.cached_content_model_mismatch(model, cache.model))
        if any(request_body.get(k) for k in ("systemInstruction", "tools", "toolConfig")):
            raise _Reject(
                error_bodies.invalid_argument(
                    "CachedContent can not be used with GenerateContent request setting"
                    " system_instruction, tools or tool_config.\n\nProposed fix: move those"
                    " values to CachedContent from GenerateContent request."
                )
            )
        return cache, cache.tokens

    def _check_quota(
        self,
        account: Account,
        model: str,
        tokens: int,
        *,
        requests: int = 1,
        ledger: str | None = None,
    ) -> None:
        """Refuse with the API's 429 when the call does not fit. `ledger`: the quota
        it is counted under when not its model's (countTokens'); the 429 still names
        the model, as Google's does."""
        ledger = model if ledger is None else ledger
        limits = self.limits(ledger, account.tier)
        if limits is None:
            return
        now, wall = self.clock.monotonic(), self.clock.time()
        violations = self._ledger.check(
            account.project,
            ledger,
            limits=limits,
            tokens=tokens,
            now=now,
            wall=wall,
            requests=requests,
        )
        if violations:
            raise _Reject(
                error_bodies.quota_exceeded(
                    violations,
                    tier=account.tier,
                    model=model,
                    retry_after=_retry_after(violations, wall),
                )
            )

    def _admit(self, account: Account, model: str, tokens: int, *, requests: int = 1) -> None:
        if self.limits(model, account.tier) is None:
            return
        self._ledger.admit(
            account.project,
            model,
            tokens=tokens,
            now=self.clock.monotonic(),
            wall=self.clock.time(),
            requests=requests,
        )

    async def _generate(self, request: Request, name: str, *, streaming: bool) -> Response:
        method = "streamGenerateContent" if streaming else "generateContent"

        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            model = self._model(name, version=version, method=method)
            model_box[0] = model.name
            body = await self._body(request)
            if isinstance(body, Mapping):
                typed = check_field_types(body)
                if typed is not None:
                    raise _Reject(typed)
            normal = normalize_generate_request(
                body, output_token_limit=model.output_token_limit, model=model.name
            )
            if isinstance(normal, ErrorReply):
                raise _Reject(normal)
            cache, cached_tokens = self._resolve_cache(normal, account, model.name)
            tokens = (
                request_tokens(
                    normal["contents"], normal.get("systemInstruction"), normal.get("tools")
                )
                + cached_tokens
            )
            if tokens > model.input_token_limit:
                raise _Reject(error_bodies.input_too_long(tokens, model.input_token_limit))
            self._check_quota(account, model.name, tokens)
            fault = pick_fault(
                self._faults[method],
                model=model.name,
                elapsed=self.elapsed(),
                streaming=streaming,
                rng=self._rng,
            )
            if fault is not None and fault.kind in REFUSING_FAULTS:
                raise _Reject(refusal(fault, rng=self._rng))
            if fault is None or self.scenario.faults_consume_quota:
                self._admit(account, model.name, tokens)
            latency = sample_latency(self.scenario.latency, model=model.name, rng=self._rng)
            if latency > 0:
                await self.clock.asleep(latency)
            if fault is not None and fault.kind in QUIET_KINDS:
                return self._quiet(
                    fault, account, model.name, method, tokens, normal, request, streaming
                )
            if fault is not None and fault.kind not in _STREAM_KINDS:
                return await self._fail(fault, account, model.name, method, tokens)
            generation = generate(
                model=model.name,
                contents=normal["contents"],
                system=normal.get("systemInstruction"),
                tools=normal.get("tools"),
                config=normal.get("generationConfig"),
                cached=cache.contents if cache else (),
                cached_system=cache.system_instruction if cache else None,
                cached_tokens=cached_tokens,
            )
            response_id = self._response_id()
            if not streaming:
                self._record_generation(account, model.name, method, 200, None, generation)
                return _json(response_json(generation, model=model.name, response_id=response_id))
            chunks = list(
                split_for_stream(
                    generation,
                    model=model.name,
                    response_id=response_id,
                    chunk_tokens=self.scenario.stream_chunk_tokens,
                )
            )
            if request.query_params.get("alt") != "sse":
                # Without alt=sse the API answers one JSON array of the chunks.
                self._record_generation(account, model.name, method, 200, None, generation)
                return _json(chunks)
            reason = fault.kind if fault is not None else None
            self._record_generation(account, model.name, method, 200, reason, generation)
            return _StreamResponse(self, chunks, fault)

        return await self._guarded(request, method, handle, name.removeprefix("models/"))

    def _quiet(
        self,
        fault: Fault,
        account: Account,
        model: str,
        method: str,
        tokens: int,
        normal: Mapping[str, Any],
        request: Request,
        streaming: bool,
    ) -> Response:
        """A 200 whose answer is unusable: the quiet failure `fault.kind`."""
        body = quiet_response(
            fault.kind,
            model=model,
            response_id=self._response_id(),
            prompt_tokens=tokens,
            config=normal.get("generationConfig"),
        )
        output = int(body["usageMetadata"].get("thoughtsTokenCount", 0))
        self._record(
            account, model, method, 200, fault.kind, input_tokens=tokens, output_tokens=output
        )
        if streaming and request.query_params.get("alt") == "sse":
            return _StreamResponse(self, [body], None)
        return _json([body] if streaming else body)

    def _record_generation(
        self,
        account: Account,
        model: str,
        method: str,
        status: int,
        reason: str | None,
        generation: Generation,
    ) -> None:
        self._record(
            account,
            model,
            method,
            status,
            reason,
            input_tokens=generation.prompt_tokens,
            output_tokens=generation.output_tokens,
            cached_tokens=generation.cached_tokens,
        )

    async def _fail(
        self, fault: Fault, account: Account, model: str, method: str, tokens: int
    ) -> Response:
        if fault.kind == "drop":
            self._record(account, model, method, 0, "dropped", input_tokens=tokens)
            return _DropResponse(self)
        if fault.kind == "drop_mid_body":  # the answer was paid for and is lost in transit
            self._record(account, model, method, 200, "dropped_mid_body", input_tokens=tokens)
            return _DropResponse(self, partial=_PARTIAL_BODY)
        if fault.kind == "deadline":
            await self.clock.asleep(fault.delay)
            reply = error_bodies.deadline_exceeded()
        elif fault.kind == "overloaded":
            reply = error_bodies.overloaded()
        elif fault.kind == "internal":
            reply = error_bodies.internal()
        elif fault.kind == "cancelled":
            reply = error_bodies.cancelled()
        else:  # bad_gateway
            reply = error_bodies.bad_gateway_html()
        self._record(account, model, method, reply.status, reply.reason, input_tokens=tokens)
        return reply_response(reply)

    async def drop_connection(self, scope: Scope, receive: Receive) -> None:
        """Close the client's connection without a response (RST), or raise in-process."""
        transport = self.connections.get(scope.get("client"))
        if transport is None:
            raise DroppedConnection("the emulator dropped the connection (scenario fault)")
        transport.abort()
        # Wait for the server to notice, so it does not answer on a dead socket.
        while (await receive())["type"] != "http.disconnect":
            pass

    # -- countTokens -------------------------------------------------------------

    async def _count_tokens(self, request: Request, name: str) -> Response:
        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            model = self._model(name, version=version, method="countTokens")
            model_box[0] = model.name
            normal = normalize_count_tokens_request(await self._body(request))
            if isinstance(normal, ErrorReply):
                raise _Reject(normal)
            fault = pick_fault(
                self._faults["countTokens"],
                model=model.name,
                elapsed=self.elapsed(),
                streaming=False,
                rng=self._rng,
            )
            # countTokens has its own per-minute quota (free: it spends nothing else).
            self._check_quota(account, model.name, 0, ledger=count_tokens_quota(model.name))
            if fault is not None:
                if fault.kind in REFUSING_FAULTS:
                    raise _Reject(refusal(fault, rng=self._rng))
                if self.scenario.faults_consume_quota:
                    self._admit(account, count_tokens_quota(model.name), 0)
                return await self._fail(fault, account, model.name, "countTokens", 0)
            self._admit(account, count_tokens_quota(model.name), 0)
            cached = 0
            inner = normal.get("generateContentRequest")
            if inner is not None:
                inner_normal = normalize_generate_request(
                    inner, output_token_limit=model.output_token_limit, model=model.name
                )
                if isinstance(inner_normal, ErrorReply):
                    raise _Reject(inner_normal)
                _, cached = self._resolve_cache(inner_normal, account, model.name)
                total = (
                    request_tokens(
                        inner_normal["contents"],
                        inner_normal.get("systemInstruction"),
                        inner_normal.get("tools"),
                    )
                    + cached
                )
            else:
                total = request_tokens(normal.get("contents") or [])
            body: dict[str, Any] = {
                "totalTokens": total,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
            }
            if cached:
                body["cachedContentTokenCount"] = cached
            self._record(account, model.name, "countTokens", 200, None)
            return _json(body)

        return await self._guarded(request, "countTokens", handle, name.removeprefix("models/"))

    # -- embedContent / batchEmbedContents -----------------------------------------

    async def _embed(self, request: Request, name: str, *, batch: bool) -> Response:
        method = "batchEmbedContents" if batch else "embedContent"

        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            model = self._model(name, version=version, method=method)
            model_box[0] = model.name
            items = parse_embed_request(await self._body(request), model=model.name, batch=batch)
            if isinstance(items, ErrorReply):
                raise _Reject(items)
            tokens = sum(item.tokens for item in items)
            # Every item of a batch is a request against RPM and RPD.
            self._check_quota(account, model.name, tokens, requests=len(items))
            fault = pick_fault(
                self._faults["embedContent"],
                model=model.name,
                elapsed=self.elapsed(),
                streaming=False,
                rng=self._rng,
            )
            if fault is not None and fault.kind in REFUSING_FAULTS:
                raise _Reject(refusal(fault, rng=self._rng))
            if fault is None or self.scenario.faults_consume_quota:
                self._admit(account, model.name, tokens, requests=len(items))
            latency = sample_latency(self.scenario.latency, model=model.name, rng=self._rng)
            if latency > 0:
                await self.clock.asleep(latency)
            if fault is not None:
                return await self._fail(fault, account, model.name, method, tokens)
            vectors = [{"values": embedding_values(model.name, item)} for item in items]
            self._record(account, model.name, method, 200, None, input_tokens=tokens)
            if batch:
                return _json({"embeddings": vectors})
            return _json({"embedding": vectors[0]})

        return await self._guarded(request, method, handle, name.removeprefix("models/"))

    # -- batches -----------------------------------------------------------------

    async def _batch_create(self, request: Request, name: str) -> Response:
        method = "batchGenerateContent"

        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            model = self._model(name, version=version, method=method)
            model_box[0] = model.name
            body = await self._body(request)
            batch = (
                _strict_object(body, {"batch"}, "")["batch"] if "batch" in (body or {}) else None
            )
            if not isinstance(batch, Mapping):
                raise _Reject(
                    error_bodies.invalid_argument(
                        "* BatchGenerateContentRequest.batch: batch is required\n"
                    )
                )
            batch = _strict_object(
                batch, {"displayName", "inputConfig", "model", "priority"}, "batch"
            )
            config = _strict_object(
                batch.get("inputConfig") or {}, {"requests", "fileName"}, "batch.input_config"
            )
            if config.get("fileName"):
                raise _Reject(
                    error_bodies.invalid_argument(
                        "The emulator supports inlined requests only (inputConfig.requests);"
                        " uploaded files are not available offline."
                    )
                )
            holder = _strict_object(
                config.get("requests") or {}, {"requests"}, "batch.input_config.requests"
            )
            items = holder.get("requests") or []
            if not isinstance(items, list) or not items:
                raise _Reject(
                    error_bodies.invalid_argument(
                        "* BatchGenerateContentRequest.batch.input_config.requests:"
                        " requests must not be empty\n"
                    )
                )
            results = []
            in_tokens = out_tokens = 0
            for index, item in enumerate(items):
                entry = _strict_object(
                    item, {"request", "metadata"}, f"batch.input_config.requests.requests[{index}]"
                )
                result: dict[str, Any] = {}
                if entry.get("metadata") is not None:
                    result["metadata"] = entry["metadata"]
                inner = dict(entry.get("request") or {})
                inner.pop("model", None)
                normal = normalize_generate_request(
                    inner, output_token_limit=model.output_token_limit, model=model.name
                )
                if isinstance(normal, ErrorReply):
                    assert isinstance(normal.body, dict)
                    result["error"] = {"code": 3, "message": normal.body["error"]["message"]}
                else:
                    generation = generate(
                        model=model.name,
                        contents=normal["contents"],
                        system=normal.get("systemInstruction"),
                        tools=normal.get("tools"),
                        config=normal.get("generationConfig"),
                    )
                    in_tokens += generation.prompt_tokens
                    out_tokens += generation.output_tokens
                    result["response"] = response_json(
                        generation, model=model.name, response_id=self._response_id()
                    )
                results.append(result)
            job = self._batches.create(
                project=account.project,
                model=f"models/{model.name}",
                display_name=batch.get("displayName"),
                results=results,
                wall=self.clock.time(),
                now=self.clock.monotonic(),
                pending_seconds=self.scenario.batch.pending_seconds,
                seconds_per_request=self.scenario.batch.seconds_per_request,
            )
            self._record(
                account,
                model.name,
                method,
                200,
                None,
                input_tokens=in_tokens,
                output_tokens=out_tokens,
            )
            return _json(job.to_operation(now=self.clock.monotonic(), version=version))

        return await self._guarded(request, method, handle, name.removeprefix("models/"))

    async def _batches_list(self, request: Request) -> Response:
        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            now = self.clock.monotonic()
            items = [
                job.to_operation(now=now, version=version)
                for job in self._batches.list(project=account.project)
            ]
            body = _page("operations", items, request)
            self._record(account, _NO_MODEL, "batches.list", 200, None)
            return _json(body)

        return await self._guarded(request, "batches.list", handle)

    async def _batches_dispatch(self, request: Request) -> Response:
        rest = str(request.path_params["rest"])
        batch_id, _, action = rest.partition(":")
        name = f"batches/{batch_id}"
        method = {"GET": "batches.get", "DELETE": "batches.delete", "POST": "batches.cancel"}[
            request.method
        ]

        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            now, wall = self.clock.monotonic(), self.clock.time()
            if request.method == "POST" and action != "cancel":
                raise _Reject(error_bodies.not_found(f"Method not found: {rest}"))
            if request.method != "POST" and action:
                raise _Reject(error_bodies.not_found(f"Method not found: {rest}"))
            if request.method == "DELETE":
                if not self._batches.delete(name, project=account.project):
                    raise _Reject(error_bodies.not_found())
                self._record(account, _NO_MODEL, method, 200, None)
                return _json({})
            if request.method == "POST":
                job = self._batches.cancel(name, project=account.project, now=now, wall=wall)
                if job is None:
                    raise _Reject(error_bodies.not_found())
                self._record(account, _NO_MODEL, method, 200, None)
                return _json({})
            job = self._batches.get(name, project=account.project)
            if job is None:
                raise _Reject(error_bodies.not_found())
            self._record(account, _NO_MODEL, method, 200, None)
            return _json(job.to_operation(now=now, version=version))

        return await self._guarded(request, method, handle)

    # -- cachedContents ----------------------------------------------------------

    async def _caches_root(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._caches_list(request)
        return await self._caches_create(request)

    async def _caches_create(self, request: Request) -> Response:
        method = "cachedContents.create"

        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            version = self._version(request)
            body = _strict_object(
                await self._body(request),
                {
                    "model",
                    "contents",
                    "systemInstruction",
                    "tools",
                    "toolConfig",
                    "ttl",
                    "expireTime",
                    "displayName",
                    "name",
                },
                "",
            )
            model_name = body.get("model")
            if not model_name:
                raise _Reject(
                    error_bodies.invalid_argument("* CachedContent.model: model is required\n")
                )
            model = self._model(str(model_name), version=version, method="createCachedContent")
            model_box[0] = model.name
            normal = normalize_generate_request(
                {
                    "contents": body.get("contents") or [{"role": "user", "parts": [{"text": ""}]}],
                    **(
                        {"systemInstruction": body["systemInstruction"]}
                        if body.get("systemInstruction")
                        else {}
                    ),
                },
                output_token_limit=model.output_token_limit,
                model=model.name,
            )
            if isinstance(normal, ErrorReply):
                raise _Reject(normal)
            contents = tuple(normal["contents"]) if body.get("contents") else ()
            system = normal.get("systemInstruction")
            tokens = request_tokens(list(contents), system, body.get("tools"))
            minimum = min_cache_tokens(model.name, self.scenario.cache_min_tokens)
            if tokens < minimum:
                raise _Reject(error_bodies.cache_too_small(tokens, minimum))
            wall = self.clock.time()
            expire = _expiry(body, wall)
            item = self._caches.create(
                project=account.project,
                model=f"models/{model.name}",
                display_name=body.get("displayName"),
                contents=contents,
                system_instruction=system,
                tools=body.get("tools"),
                tokens=tokens,
                now=wall,
                expire_time=expire,
            )
            self._record(account, model.name, method, 200, None, input_tokens=tokens)
            return _json(item.to_json())

        return await self._guarded(request, method, handle)

    async def _caches_list(self, request: Request) -> Response:
        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            items = [
                c.to_json()
                for c in self._caches.list(project=account.project, now=self.clock.time())
            ]
            body = _page("cachedContents", items, request)
            self._record(account, _NO_MODEL, "cachedContents.list", 200, None)
            return _json(body)

        return await self._guarded(request, "cachedContents.list", handle)

    async def _caches_item(self, request: Request) -> Response:
        name = "cachedContents/" + str(request.path_params["rest"])
        method = {
            "GET": "cachedContents.get",
            "PATCH": "cachedContents.update",
            "DELETE": "cachedContents.delete",
        }[request.method]

        async def handle(account: Account | None, model_box: list[str]) -> Response:
            assert account is not None
            wall = self.clock.time()
            if request.method == "DELETE":
                if not self._caches.delete(name, project=account.project, now=wall):
                    raise _Reject(error_bodies.cache_not_found())
                self._record(account, _NO_MODEL, method, 200, None)
                return _json({})
            if request.method == "PATCH":
                body = _strict_object(await self._body(request), {"ttl", "expireTime", "name"}, "")
                item = self._caches.update(
                    name, project=account.project, now=wall, expire_time=_expiry(body, wall)
                )
            else:
                item = self._caches.get(name, project=account.project, now=wall)
            if item is None:
                raise _Reject(error_bodies.cache_not_found())
            self._record(account, _NO_MODEL, method, 200, None)
            return _json(item.to_json())

        return await self._guarded(request, method, handle)


def _retry_after(violations: Sequence[Violation], wall: float) -> float:
    """The delay a 429 advertises: exact for per-minute limits; short for per-day ones.

    For a per-day quota the real API also sends a short delay (retrying is wasted
    until the Pacific midnight, which the body does not say); the emulator sends the
    time to the next whole minute of wall time.
    """
    if any(v.kind == "rpd" for v in violations):
        return 60.0 - (wall % 60.0)
    return max(v.retry_after for v in violations)


def _strict_object(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """`obj` with camelCase keys, or the API's "Unknown name" 400."""
    if not isinstance(obj, Mapping):
        raise _Reject(
            error_bodies.invalid_json(
                f"Invalid value at '{where or 'request'}': expected an object."
            )
        )
    out: dict[str, Any] = {}
    unknown = []
    for key, value in obj.items():
        name = key if key in allowed else camel(key)
        if name not in allowed:
            unknown.append((key, where))
        else:
            out[name] = value
    if unknown:
        raise _Reject(error_bodies.unknown_field(unknown))
    return out


def _expiry(body: Mapping[str, Any], wall: float) -> float:
    expire_time = field(body, "expireTime")
    if expire_time:
        try:
            return parse_rfc3339(str(expire_time))
        except ValueError:
            raise _Reject(
                error_bodies.invalid_value(
                    "Invalid value at 'cached_content.expire_time'"
                    f' (type.googleapis.com/google.protobuf.Timestamp), "{expire_time}"',
                    field_path="cached_content.expire_time",
                )
            ) from None
    ttl = field(body, "ttl")
    if ttl is None:
        return wall + DEFAULT_TTL
    seconds = parse_duration(str(ttl))
    if seconds is None:
        raise _Reject(
            error_bodies.invalid_value(
                "Invalid value at 'cached_content.ttl'"
                f' (type.googleapis.com/google.protobuf.Duration), "{ttl}"',
                field_path="cached_content.ttl",
            )
        )
    return wall + seconds


def _page(field: str, items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    """One page of a list response, `{field: [...], "nextPageToken": ...}` as the API pages."""
    try:
        size = int(request.query_params.get("pageSize") or 50)
        start = int(request.query_params.get("pageToken") or 0)
    except ValueError:
        raise _Reject(error_bodies.invalid_argument("Invalid pageSize or pageToken.")) from None
    size = max(1, min(size, 1000))
    body: dict[str, Any] = {field: items[start : start + size]}
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body


# What a "drop_mid_body" fault sends of a 200 before it cuts the connection: the start
# of a real answer, announced as longer than it is.
_PARTIAL_BODY = b'{\n  "candidates": [\n    {\n      "content": {\n        "parts": [\n'
_ANNOUNCED_LENGTH = 4096


class _DropResponse(Response):
    """No response at all, or (`partial`) a 200 whose body stops midway: the
    connection is closed under the client."""

    def __init__(self, emulator: Emulator, *, partial: bytes | None = None) -> None:
        super().__init__()
        self._emulator = emulator
        self._partial = partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._partial is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json; charset=UTF-8"),
                        (b"content-length", str(_ANNOUNCED_LENGTH).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._partial, "more_body": True})
        await self._emulator.drop_connection(scope, receive)


class _StreamResponse(Response):
    """Server-sent events `data: {json}\\r\\n\\r\\n`, possibly broken by a stream fault."""

    def __init__(
        self, emulator: Emulator, chunks: list[dict[str, Any]], fault: Fault | None
    ) -> None:
        super().__init__()
        self._emulator = emulator
        self._chunks = chunks
        self._fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        fault = self._fault
        if fault is not None and fault.kind in STALL_KINDS:
            await self._stalled(fault, receive, send)
            return
        # A stream fault strikes before the last chunk, so the stream never completes.
        break_at = min(self._fault.after_chunks, len(self._chunks) - 1) if self._fault else None
        for index, chunk in enumerate(self._chunks):
            if index == break_at and self._fault is not None:
                if self._fault.kind == "stream_drop":
                    await self._emulator.drop_connection(scope, receive)
                    return
                error = error_bodies.internal().body
                await send({"type": "http.response.body", "body": _sse(error), "more_body": True})
                break
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stalled(self, fault: Fault, receive: Receive, send: Send) -> None:
        """Silence for `fault.delay` on the emulator's clock, before the first chunk or
        after `after_chunks`; then the rest of the answer, as a slow stream would. A
        client that gives up on the silence (as it should) ends it: nothing is left
        sleeping for the server's shutdown to cancel."""
        silent_at = 0 if fault.kind == "stall_before_first_chunk" else fault.after_chunks
        silent_at = min(silent_at, len(self._chunks) - 1)
        for index, chunk in enumerate(self._chunks):
            if index == silent_at and await _client_left_during(
                self._emulator.clock.asleep(fault.delay), receive
            ):
                return
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _client_left_during(silence: Coroutine[Any, Any, None], receive: Receive) -> bool:
    """Wait out `silence`, unless the client disconnects first (True then)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    waiting = asyncio.ensure_future(silence)
    leaving = asyncio.ensure_future(disconnected())
    done, _ = await asyncio.wait((waiting, leaving), return_when=asyncio.FIRST_COMPLETED)
    for task in (waiting, leaving):
        task.cancel()
    return leaving in done


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n\r\n"
