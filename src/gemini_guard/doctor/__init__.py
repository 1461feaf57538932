"""The doctor's checks: is this machine, key and project able to call Gemini, and if not, why.

Each check is a function returning a `CheckResult` (status ok / warn / fail / skip, a
detail and a concrete fix, in English and Chinese). `run_doctor` runs them in order,
skipping the ones whose prerequisite failed, so one root cause counts as one failure.
The order follows the troubleshooting method: local setup first (key, SDK), then the
path to the endpoint (DNS, TCP, TLS, HTTP), then the isolation test - one minimal
request to a stable model, which tells "my code" from "my key or project" from
"Google's side" - then the models this app is configured to use. On Vertex AI
(`DoctorOptions(vertex=True)`), Google Cloud credentials, a project and a location
take the API key's place, and the test call goes through the SDK with vertexai=True.

The checks live by area:
- `_base`: CheckResult, Text, DoctorOptions and the shared helpers;
- `_key`: the API key google-genai would use, the SDK's version;
- `_network`: the endpoint (DNS, TCP, TLS, HTTP) and the status page;
- `_api`: the isolation test and the model probes;
- `_tier`: the tier the API reveals against the configured one;
- `_store`: the state store;
- `_vertex`: Vertex AI's credentials, project, location and test call;
- `_runner`: the checklists in order (the Gemini API's, Vertex AI's).

Every network call has a short timeout; time is read only through the injected Clock.
API keys are never printed: `redact_key` shows the first and last four characters.
"""

from __future__ import annotations

from gemini_guard.doctor._api import check_isolation, check_models
from gemini_guard.doctor._base import (
    DEFAULT_BASE_URL,
    DEFAULT_STATUS_URL,
    ISOLATION_MODEL,
    CheckResult,
    DoctorOptions,
    Status,
    Text,
    failures,
)
from gemini_guard.doctor._key import (
    OLDEST_KNOWN_GOOD_SDK,
    KeyChoice,
    check_api_key,
    check_sdk_version,
    find_api_key,
    redact_key,
)
from gemini_guard.doctor._network import check_endpoint, check_status_page
from gemini_guard.doctor._runner import run_doctor, run_vertex_doctor
from gemini_guard.doctor._store import check_store
from gemini_guard.doctor._tier import check_tier
from gemini_guard.doctor._vertex import (
    VERTEX_BASE_URL_ENV,
    VERTEX_STATUS_URL,
    check_vertex_call,
    check_vertex_credentials,
    check_vertex_location,
    check_vertex_project,
    vertex_base_url,
    wants_vertex,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_STATUS_URL",
    "ISOLATION_MODEL",
    "OLDEST_KNOWN_GOOD_SDK",
    "VERTEX_BASE_URL_ENV",
    "VERTEX_STATUS_URL",
    "CheckResult",
    "DoctorOptions",
    "KeyChoice",
    "Status",
    "Text",
    "check_api_key",
    "check_endpoint",
    "check_isolation",
    "check_models",
    "check_sdk_version",
    "check_status_page",
    "check_store",
    "check_tier",
    "check_vertex_call",
    "check_vertex_credentials",
    "check_vertex_location",
    "check_vertex_project",
    "failures",
    "find_api_key",
    "redact_key",
    "run_doctor",
    "run_vertex_doctor",
    "vertex_base_url",
    "wants_vertex",
]
