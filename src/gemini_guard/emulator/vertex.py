"""The Vertex AI surface of the emulator: the same models, reached the way Vertex is.

`genai.Client(vertexai=True, project=P, location=L)` sends
`POST /{v1|v1beta1}/projects/P/locations/L/publishers/google/models/M:ACTION` with an
OAuth bearer token (google-genai 3.x uses v1beta1 unless told otherwise). Here any
bearer token is accepted as given: the emulator checks that one is present, not what
it is, so tests fake credentials with a static token and never reach a metadata server.

What differs from the Gemini API surface, and is emulated:
- authentication: `Authorization: Bearer ...` instead of an API key (401 without one);
- accounting: per project *and location* (`P@L` in the stats), with no per-tier RPM;
- the dynamic shared quota: a location's capacity per model (`[vertex.locations.L]`
  in the scenario) shared by every project; past it, the bare 429 "Resource
  exhausted. Please try again later..." with no QuotaFailure details;
- an optional per-project quota per base model (`[vertex] project_rpm`), answered with
  "Quota exceeded for aiplatform.googleapis.com/...per_base_model with base model: M";
- a missing model: Vertex's "Publisher Model ... was not found" 404;
- Google's OAuth token endpoint (`POST /token`), so credentials files whose
  `token_uri` points here (a service account's JWT grant, gcloud's refresh token)
  are exchanged for a bearer token offline, as the real SDK does against Google.

Everything else (body checks, input size, faults, latency, the answer itself) is the
emulator's one implementation, reached through the Gemini API route.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.error_bodies import ErrorReply
from gemini_guard.emulator.quota import QuotaLedger
from gemini_guard.emulator.replies import VERTEX_ACCOUNT_KEY, Account, reply_response
from gemini_guard.tiers import Limits

if TYPE_CHECKING:
    from gemini_guard.emulator.app import Emulator

__all__ = [
    "SHARED_QUOTA_MESSAGE",
    "VERTEX_TIER",
    "VERTEX_VERSIONS",
    "VertexSurface",
    "project_quota_exceeded",
    "shared_quota_exhausted",
]

VERTEX_VERSIONS = ("v1", "v1beta1")
# The tier name of Vertex accounts: no shipped tier has it, so no per-tier limits apply.
VERTEX_TIER = "vertex"
SHARED_QUOTA_MESSAGE = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)
PROJECT_METRIC = (
    "aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model"
)
_ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")
_RATE_LIMITED_ACTIONS = ("generateContent", "streamGenerateContent")
# What each grant must carry (RFC 7523 for a service account, RFC 6749 for a refresh).
_GRANTS = {
    "urn:ietf:params:oauth:grant-type:jwt-bearer": "assertion",
    "refresh_token": "refresh_token",
}


def shared_quota_exhausted() -> ErrorReply:
    """The dynamic-shared-quota 429: no details, no retry delay."""
    body = {"error": {"code": 429, "message": SHARED_QUOTA_MESSAGE, "status": "RESOURCE_EXHAUSTED"}}
    return ErrorReply(429, body, "shared_quota")


def project_quota_exceeded(model: str) -> ErrorReply:
    """A per-project, per-base-model quota of Vertex, as its message spells it."""
    message = (
        f"Quota exceeded for {PROJECT_METRIC} with base model: {model}. "
        "Please submit a quota increase request. "
        "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
    )
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    return ErrorReply(429, body, "project_quota")


def _unauthenticated() -> ErrorReply:
    message = (
        "Request is missing required authentication credential. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    )
    body = {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED"}}
    return ErrorReply(401, body, "missing_credentials")


def _model_not_found(project: str, location: str, model: str) -> ErrorReply:
    message = (
        f"Publisher Model `projects/{project}/locations/{location}/publishers/google/models/"
        f"{model}` was not found or your project does not have access to it. Please ensure "
        "you are using a valid model version. For more information, see: "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
    )
    body = {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}
    return ErrorReply(404, body, "model_not_found")


class VertexSurface:
    """The Vertex routes of one `Emulator`, with the location ledgers they need."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        # Shared capacity: keyed by ("location:L", model), all projects together.
        # Per-project quota: keyed by ("P@L", model).
        self._ledger = QuotaLedger()
        self._tokens = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route("/token", self._token, methods=["POST"]),
            Route(
                "/{version}/projects/{project}/locations/{location}/publishers/google/models/"
                "{rest:path}",
                self._dispatch,
                methods=["POST"],
            ),
        ]

    async def _token(self, request: Request) -> Response:
        """An OAuth token for any well-formed grant: like the bearer check, the
        emulator looks at the shape of a credential, never at its signature."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        grant = (form.get("grant_type") or [""])[0]
        needed = _GRANTS.get(grant)
        if needed is None:
            body = {"error": "unsupported_grant_type", "error_description": f"{grant!r}"}
            return JSONResponse(body, status_code=400)
        if not (form.get(needed) or [""])[0].strip():
            body = {"error": "invalid_request", "error_description": f"{needed} is missing"}
            return JSONResponse(body, status_code=400)
        token = f"ya29.emulated-{next(self._tokens)}"
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _reject(
        self, account: Account | None, model: str, method: str, reply: ErrorReply
    ) -> Response:
        self._emulator.record_rejection(account, model, method, reply)
        return reply_response(reply)

    async def _dispatch(self, request: Request) -> Response:
        params = request.path_params
        version, project, location = params["version"], params["project"], params["location"]
        model, _, action = str(params["rest"]).partition(":")
        method = action or "models.get"
        if version not in VERTEX_VERSIONS:
            reply = error_bodies.not_found(f"API version {version} is not supported.")
            return self._reject(None, model, method, reply)
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._reject(None, model, method, _unauthenticated())
        account = Account(f"{project}@{location}", VERTEX_TIER)
        if action not in _ACTIONS:
            reply = error_bodies.not_found(f"Method not found: models/{params['rest']}")
            return self._reject(account, model, method, reply)
        if not self._emulator.knows_model(model):
            return self._reject(account, model, method, _model_not_found(project, location, model))
        if action in _RATE_LIMITED_ACTIONS:
            refused = self._take_quota(account.project, location, model)
            if refused is not None:
                return self._reject(account, model, method, refused)
        # The rest is the Gemini API route's work, done for this Vertex account.
        scope = dict(request.scope)
        scope["path_params"] = {"version": "v1", "rest": f"{model}:{action}"}
        scope[VERTEX_ACCOUNT_KEY] = account
        return await self._emulator.dispatch_model_request(Request(scope, request.receive))

    def _take_quota(self, project: str, location: str, model: str) -> ErrorReply | None:
        """Admit one request against the location's capacity and the project's quota."""
        emulator = self._emulator
        spec = emulator.scenario.vertex
        now, wall = emulator.clock.monotonic(), emulator.clock.time()
        place = spec.locations.get(location)
        shared = place.capacity(model, emulator.elapsed()) if place is not None else None
        shared_key = f"location:{location}"
        if shared is not None and self._ledger.check(
            shared_key, model, limits=Limits(rpm=shared), tokens=0, now=now, wall=wall
        ):
            return shared_quota_exhausted()
        if spec.project_rpm is not None and self._ledger.check(
            project, model, limits=Limits(rpm=spec.project_rpm), tokens=0, now=now, wall=wall
        ):
            return project_quota_exceeded(model)
        if shared is not None:
            self._ledger.admit(shared_key, model, tokens=0, now=now, wall=wall)
        if spec.project_rpm is not None:
            self._ledger.admit(project, model, tokens=0, now=now, wall=wall)
        return None
