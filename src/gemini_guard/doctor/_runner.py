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

if TYPE_CHECKING:
    from google import genai

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
    """Every check, in order; a check whose prerequisite failed is skipped, not failed."""
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
