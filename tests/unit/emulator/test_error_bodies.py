# ruff: noqa: E501  (tables of real names read best one per line)
"""Error bodies in the real API's shapes (compared with captured bodies in tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.emulator import error_bodies
from gemini_guard.emulator.quota import Violation

FIXTURES = json.loads((Path(__file__).parents[2] / "fixtures" / "gemini-errors.json").read_text())


def _fixture(status: int, contains: str = "") -> dict[str, Any]:
    for case in FIXTURES["cases"]:
        if case["http"] == status and contains in json.dumps(case["body"]):
            body: dict[str, Any] = case["body"]
            return body
    raise LookupError(status)


def _shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize(
    ("seconds", "message", "retry_info"),
    [
        (37.284115, "37.284115s", "38s"),
        (60.0, "60.000000s", "60s"),
        (0.856559356, "856.559356ms", "1s"),
        (1.0, "1.000000s", "1s"),
        (59.0000000001, "59.000000s", "59s"),  # float noise does not add a second
    ],
)
def test_retry_delay_formats(seconds: float, message: str, retry_info: str) -> None:
    assert error_bodies.format_retry_message(seconds) == message
    assert error_bodies.format_retry_info(seconds) == retry_info


def test_free_tier_429_has_the_shape_and_wording_of_a_real_one() -> None:
    reply = error_bodies.quota_exceeded(
        [Violation("rpm", 10, 37.284115)],
        tier="free",
        model="gemini-2.5-flash",
        retry_after=37.284115,
    )
    real = _fixture(429)
    assert reply.status == 429
    assert isinstance(reply.body, dict)
    assert _shape(reply.body) == _shape(real)
    # Same message (the fixture has the same limit, model and delay), RetryInfo rounded up.
    assert reply.body["error"]["message"] == real["error"]["message"]
    ours = reply.body["error"]["details"]
    assert ours[0] == real["error"]["details"][0]
    assert ours[2] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}


@pytest.mark.parametrize(
    ("kind", "tier", "metric", "quota_id"),
    [
        ("rpm", "free", "generate_content_free_tier_requests", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        ("tpm", "free", "generate_content_free_tier_input_token_count", "GenerateContentInputTokensPerModelPerMinute-FreeTier"),
        ("rpd", "free", "generate_content_free_tier_requests", "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        ("rpm", "tier1", "generate_content_paid_tier_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
        ("tpm", "tier1", "generate_content_paid_tier_input_token_count", "GenerateContentPaidTierInputTokensPerModelPerMinute"),
        ("rpd", "tier1", "generate_content_paid_tier_requests", "GenerateRequestsPerDayPerProjectPerModel"),
        ("tpm", "tier2", "generate_content_paid_tier_2_input_token_count", "GenerateContentPaidTierInputTokensPerModelPerMinute"),
        ("rpm", "tier3", "generate_content_paid_tier_3_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
    ],
)  # fmt: skip
def test_quota_names_follow_the_real_naming(
    kind: str, tier: str, metric: str, quota_id: str
) -> None:
    names = error_bodies.quota_names(kind, tier)
    assert names.metric == "generativelanguage.googleapis.com/" + metric
    assert names.quota_id == quota_id


@pytest.mark.parametrize(
    ("reply", "status", "contains"),
    [
        (error_bodies.overloaded(), 503, "overloaded"),
        (error_bodies.internal(), 500, "internal error"),
        (error_bodies.missing_key(), 403, "unregistered callers"),
        (
            error_bodies.model_not_found("gemini-1.0-pro", version="v1", method="generateContent"),
            404,
            "not found",
        ),
    ],
)
def test_simple_errors_match_the_captured_bodies_exactly(
    reply: error_bodies.ErrorReply, status: int, contains: str
) -> None:
    assert reply.status == status
    assert reply.body == _fixture(status, contains)


def test_out_of_range_wording_matches_the_captured_one() -> None:
    from gemini_guard.emulator.request_body import normalize_generate_request

    reply = normalize_generate_request(
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 9}},
        output_token_limit=100,
        model="gemini-2.5-flash",
    )
    assert isinstance(reply, error_bodies.ErrorReply)
    assert reply.body == _fixture(400, "candidate_count")


def test_unknown_fields_name_every_one_with_its_place() -> None:
    reply = error_bodies.unknown_field([("stream", ""), ("foo", "generation_config")])
    assert isinstance(reply.body, dict)
    error = reply.body["error"]
    assert error["message"] == (
        'Invalid JSON payload received. Unknown name "stream": Cannot find field.\n'
        "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field."
    )
    violations = error["details"][0]["fieldViolations"]
    assert violations[1]["field"] == "generation_config"
    assert "field" not in violations[0]


def test_key_and_account_errors() -> None:
    invalid = error_bodies.api_key_invalid()
    assert invalid.status == 400
    assert isinstance(invalid.body, dict)
    assert invalid.body["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert error_bodies.key_leaked().status == 403
    region = error_bodies.location_unsupported()
    assert (region.status, region.body["error"]["status"]) == (400, "FAILED_PRECONDITION")  # type: ignore[index]
    assert error_bodies.credit_depleted().status == 402


def test_bad_gateway_is_an_html_page() -> None:
    reply = error_bodies.bad_gateway_html()
    assert reply.status == 502
    assert isinstance(reply.body, str)
    assert reply.body.startswith("<!DOCTYPE html>")
    assert "Error 502 (Server Error)" in reply.body
    assert reply.content_type.startswith("text/html")
