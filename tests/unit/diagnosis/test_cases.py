"""Every real error variant in tests/fixtures pinned to the diagnosis it must give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gemini_guard import diagnose
from gemini_guard.diagnosis import Diagnosis, diagnose_http

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "gemini-error-cases.json").read_text("utf-8"))[
    "cases"
]


def _diagnose_case(case: dict[str, Any]) -> Diagnosis:
    if "text" in case:
        return diagnose(case["text"])
    return diagnose_http(case["status"], case["body"], case.get("headers"))


def test_the_fixture_covers_every_category_but_unknown_many_times() -> None:
    seen = {case["expect"]["category"] for case in CASES}
    assert seen >= {
        "bad_request",
        "request_too_large",
        "invalid_api_key",
        "precondition",
        "permission_denied",
        "not_found",
        "payment_required",
        "rate_limited",
        "daily_quota_exhausted",
        "no_quota",
        "server_error",
        "overloaded",
        "deadline_exceeded",
        "bad_gateway",
        "timeout",
        "network",
        "unknown",
    }
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case: dict[str, Any]) -> None:
    expect = case["expect"]
    d = _diagnose_case(case)
    assert d.category.value == expect["category"]
    assert d.retryable is expect["retryable"]
    if expect["retry_after"] is None:
        assert d.retry_after is None
    else:
        assert d.retry_after == pytest.approx(expect["retry_after"], abs=1e-6)
    assert d.http_status == expect["http_status"]
    assert d.grpc_status == expect["grpc_status"]
    assert d.reason == expect["reason"]
    if expect["quota"] is None:
        assert d.quota is None
    else:
        assert d.quota is not None
        got = {
            "scope": d.quota.scope,
            "unit": d.quota.unit,
            "tier": d.quota.tier,
            "limit": d.quota.limit,
            "model": d.quota.model,
        }
        assert got == expect["quota"]
    assert "AIza" not in d.message
    assert "AIza" not in d.explain("en", now=0.0)


PARSED_BODIES = [c for c in CASES if "text" not in c and isinstance(c["body"], dict | list)]


@pytest.mark.parametrize("case", PARSED_BODIES, ids=[case["name"] for case in PARSED_BODIES])
def test_the_body_gives_the_same_answer_as_json_text_and_bytes(case: dict[str, Any]) -> None:
    as_dict = diagnose_http(case["status"], case["body"], case.get("headers"))
    text = json.dumps(case["body"])
    assert diagnose_http(case["status"], text, case.get("headers")) == as_dict
    assert diagnose_http(case["status"], text.encode(), case.get("headers")) == as_dict


SOURCED = [c for c in CASES if "source" in c]


def test_the_real_shapes_of_issue_15_name_their_public_source() -> None:
    assert len(SOURCED) >= 13
    for case in SOURCED:
        assert case["source"].startswith("https://github.com/"), case["name"]
        assert "/issues/" in case["source"] or "/pull/" in case["source"], case["name"]
        assert case["note"]
