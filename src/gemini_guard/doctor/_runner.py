"""The whole checklist in order, a check whose prerequisite failed skipped, not failed,
so one root cause counts as one failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gemini_guard.diagnosis import Diagnosis
from gemini_guard.doctor._api import (
    _KEY_REFUSED,
    TITLE_ISOLATION,
    TITLE_MODELS,
    check_isolation,
    check_models,
)
from gemini_guard.doctor._base import CheckResult, DoctorOptions, Text, _skipped
from gemini_guard.doctor._key import check_api_key, check_sdk_version, find_api_key
from gemini_guard.doctor._network import check_endpoint, check_status_page
from gemini_guard.doctor._store import check_store
from gemini_guard.doctor._tier import check_tier
from gemini_guard.doctor._vertex import (
    LOCATION_ENV,
    PROJECT_ENV,
    TITLE_TEST_CALL,
    check_vertex_call,
    check_vertex_credentials,
    check_vertex_location,
    check_vertex_project,
    credentials_project,
    probe_vertex_models,
    setting,
)

if TYPE_CHECKING:
    from google import genai
    from google.auth.credentials import Credentials

    from gemini_guard.clock import Clock


def _client(key: str, options: DoctorOptions) -> genai.Client:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=options.base_url, timeout=max(1, int(options.timeout * 1000))
        ),
    )


def _api_checks(
    client: genai.Client, options: DoctorOptions, results: list[CheckResult], clock: Clock
) -> list[Diagnosis]:
    """The isolation test, then the models; appends to `results`, returns the diagnoses."""
    diagnoses: list[Diagnosis] = []
    isolation, diagnosis = check_isolation(client, options.isolation_model, clock=clock)
    results.append(isolation)
    if diagnosis is not None:
        diagnoses.append(diagnosis)
    if diagnosis is not None and diagnosis.category in _KEY_REFUSED:
        # The key or project is refused: every further request would say the same.
        why = Text("the isolation test failed", "隔离测试失败")
        results.append(_skipped("models", TITLE_MODELS, why))
    else:
        model_results, seen = check_models(
            client,
            options.models,
            clock=clock,
            probe=options.probe_models,
            already_probed={options.isolation_model: isolation},
        )
        results += model_results
        diagnoses += seen
    return diagnoses


def run_doctor(
    options: DoctorOptions,
    *,
    env: Mapping[str, str],
    clock: Clock,
    client_factory: Callable[[str, DoctorOptions], genai.Client] = _client,
) -> list[CheckResult]:
    """Every check, in order; a check whose prerequisite failed is skipped, not failed.

    With `options.vertex`, the Vertex AI checklist instead (`run_vertex_doctor`).
    """
    if options.vertex:
        return run_vertex_doctor(options, env=env, clock=clock)
    choice = find_api_key(env, key_env=options.key_env)
    results = [check_api_key(choice), check_sdk_version()]
    endpoint = check_endpoint(options.base_url, timeout=options.timeout, clock=clock)
    results.append(endpoint)

    diagnoses: list[Diagnosis] = []
    no_key = Text("no usable API key", "没有可用的 API 密钥")
    no_path = Text("the endpoint is unreachable", "接口地址不可达")
    if choice.key is None or endpoint.status == "fail":
        why = no_key if choice.key is None else no_path
        results.append(_skipped("isolation", TITLE_ISOLATION, why))
        results.append(_skipped("models", TITLE_MODELS, why))
    else:
        client = client_factory(choice.key, options)
        try:
            diagnoses += _api_checks(client, options, results, clock)
        finally:
            client.close()
    results.append(check_tier(diagnoses, options.tier))
    results.append(check_store(options.store, timeout=options.timeout))
    results.append(check_status_page(options.status_url, timeout=options.timeout))
    return results


VertexClientFactory = Callable[["Credentials", str, str, DoctorOptions], "genai.Client"]


def _vertex_client(
    credentials: Credentials, project: str, location: str, options: DoctorOptions
) -> genai.Client:
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=credentials,
        http_options=types.HttpOptions(
            base_url=options.base_url, timeout=max(1, int(options.timeout * 1000))
        ),
    )


def run_vertex_doctor(
    options: DoctorOptions,
    *,
    env: Mapping[str, str],
    clock: Clock,
    client_factory: VertexClientFactory = _vertex_client,
) -> list[CheckResult]:
    """The Vertex AI checklist: credentials, project, location, SDK, endpoint, a test
    call (and the configured models), store and status page; no API key, no tier."""
    credentials_result, credentials = check_vertex_credentials(env)
    project, project_source = setting(options.project, env, PROJECT_ENV)
    location, location_source = setting(options.location, env, LOCATION_ENV)
    results = [
        credentials_result,
        check_vertex_project(project, project_source, suggestion=credentials_project(env)),
        check_vertex_location(location, location_source),
        check_sdk_version(),
    ]
    endpoint = check_endpoint(options.base_url, timeout=options.timeout, clock=clock, vertex=True)
    results.append(endpoint)
    why = _vertex_blocked(credentials, project, results[2], endpoint)
    if why is not None or credentials is None or project is None:
        why = why or Text("no usable credentials", "没有可用的凭据")
        results.append(_skipped("isolation", TITLE_TEST_CALL, why))
        results += [
            _skipped(f"model:{m}", Text(f"Model {m}", f"模型 {m}"), why) for m in options.models
        ]
    else:
        where = location or "global"  # google-genai's own default
        client = client_factory(credentials, project, where, options)
        try:
            call, diagnosis = check_vertex_call(
                client, options.isolation_model, clock=clock, project=project, location=where
            )
            results.append(call)
            refused = diagnosis is not None and diagnosis.category in _KEY_REFUSED
            if options.probe_models and not refused:
                results += probe_vertex_models(
                    client,
                    options.models,
                    clock=clock,
                    project=project,
                    location=where,
                    done={options.isolation_model: call},
                )
        finally:
            client.close()
    results.append(check_store(options.store, timeout=options.timeout))
    results.append(check_status_page(options.status_url, timeout=options.timeout))
    return results


def _vertex_blocked(
    credentials: Credentials | None,
    project: str | None,
    location: CheckResult,
    endpoint: CheckResult,
) -> Text | None:
    """Why the test call cannot be made, the first reason only; None: it can."""
    if credentials is None:
        return Text("no usable credentials", "没有可用的凭据")
    if project is None:
        return Text("no project", "没有项目")
    if location.status == "fail":
        return Text("the location is not valid", "位置无效")
    if endpoint.status == "fail":
        return Text("the endpoint is unreachable", "接口地址不可达")
    return None
