"""Vertex AI's quota errors: recognised by their body, explained with Vertex's advice."""

from __future__ import annotations

import pytest

import gemini_guard as gg
from gemini_guard.diagnosis._vertex import is_vertex, vertex_quota_from_message

SHARED = {
    "error": {
        "code": 429,
        "message": "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
        "status": "RESOURCE_EXHAUSTED",
    }
}
PROJECT = {
    "error": {
        "code": 429,
        "message": "Quota exceeded for aiplatform.googleapis.com/"
        "generate_content_requests_per_minute_per_project_per_base_model with base model: "
        "gemini-2.5-pro. Please submit a quota increase request. "
        "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
        "status": "RESOURCE_EXHAUSTED",
    }
}
STUDIO = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    }
}
NOW = 1_780_000_000.0


def test_the_shared_quota_429_gets_regions_global_and_provisioned_throughput() -> None:
    d = gg.diagnose(SHARED)
    assert d.category is gg.Category.RATE_LIMITED
    assert d.retryable
    assert d.quota is None
    assert d.retry_after is None
    assert is_vertex(d)
    text = d.explain("en", now=NOW)
    assert text.startswith("Vertex AI: the shared capacity")
    assert "location='global'" in text
    assert "us-central1" in text
    assert "Provisioned Throughput" in text
    assert "dynamic-shared-quota" in text
    assert "ai.dev" not in text
    assert "aistudio" not in text
    zh = d.explain("zh", now=NOW)
    assert "动态共享配额" in zh
    assert "global" in zh
    assert "预配吞吐量" in zh
    assert "ai.dev" not in zh


def test_a_project_quota_names_the_metric_and_the_base_model() -> None:
    d = gg.diagnose(PROJECT)
    assert d.category is gg.Category.RATE_LIMITED
    assert d.quota is not None
    assert (d.quota.scope, d.quota.unit, d.quota.tier, d.quota.model) == (
        "minute",
        "requests",
        "paid",
        "gemini-2.5-pro",
    )
    assert d.quota.metric == (
        "aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model"
    )
    text = d.explain("en", now=NOW)
    assert "Vertex AI quota exceeded: requests per minute for gemini-2.5-pro" in text
    assert "console.cloud.google.com/iam-admin/quotas" in text
    assert "ai.dev" not in text
    assert "gemini-2.5-pro 的每分钟请求" in d.explain("zh", now=NOW)


@pytest.mark.parametrize(
    ("metric", "scope", "unit"),
    [
        ("generate_content_input_tokens_per_minute_per_base_model", "minute", "tokens"),
        ("online_prediction_requests_per_day_per_base_model", "day", "requests"),
    ],
)
def test_the_metric_gives_scope_and_unit(metric: str, scope: str, unit: str) -> None:
    (found,) = vertex_quota_from_message(
        f"Quota exceeded for aiplatform.googleapis.com/{metric} with base model: gemini-2.0-flash."
    )
    assert (found.scope, found.unit, found.model) == (scope, unit, "gemini-2.0-flash")


def test_an_ai_studio_429_keeps_its_own_advice() -> None:
    d = gg.diagnose(STUDIO)
    assert d.category is gg.Category.RATE_LIMITED
    assert not is_vertex(d)
    text = d.explain("en", now=NOW)
    assert "Vertex" not in text
    assert "ai.dev" in text


def test_the_vertex_shape_survives_the_sdk_error_text() -> None:
    # What `str(ClientError)` prints: "429 RESOURCE_EXHAUSTED. {...}".
    d = gg.diagnose(f"429 RESOURCE_EXHAUSTED. {SHARED}")
    assert d.category is gg.Category.RATE_LIMITED
    assert "Vertex AI" in d.explain("en", now=NOW)


def test_other_vertex_errors_keep_the_general_explanation() -> None:
    overloaded = {
        "error": {
            "code": 503,
            "message": "The model is overloaded. See "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429",
            "status": "UNAVAILABLE",
        }
    }
    d = gg.diagnose(overloaded)
    assert d.category is gg.Category.OVERLOADED
    assert not d.explain("en", now=NOW).startswith("Vertex AI: the shared capacity")
