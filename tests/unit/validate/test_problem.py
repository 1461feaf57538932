"""Problems as text (en, zh), as a Diagnosis, and as the RequestRejected the Guard raises."""

from __future__ import annotations

import pytest

from gemini_guard.diagnosis import Category
from gemini_guard.errors import RequestRejected
from gemini_guard.validation import Problem, check_request, rejection, rejection_diagnosis


def test_explain_names_the_field_the_range_and_the_suggestion() -> None:
    problem = Problem(
        path="config.topP",
        code="out_of_range",
        message="topP=1.5 is out of range",
        message_zh="topP=1.5 超出范围",
        allowed="0.0–1.0",
        suggestion="1.0",
    )
    assert problem.explain() == (
        "config.topP: topP=1.5 is out of range (allowed: 0.0–1.0). Did you mean 1.0?"
    )
    assert (
        problem.explain("zh")
        == "config.topP: topP=1.5 超出范围（允许：0.0–1.0）。你是不是想写 1.0？"
    )
    assert str(problem) == problem.explain("en")


def test_a_not_found_model_leads_the_diagnosis_like_the_server_would() -> None:
    problems = check_request("gemini-1.0-pro", "hi", {"temperature": 5})
    diagnosis = rejection_diagnosis(problems)
    assert diagnosis.category is Category.NOT_FOUND
    assert (diagnosis.http_status, diagnosis.grpc_status) == (404, "NOT_FOUND")
    assert diagnosis.retryable is False
    assert "gemini-1.0-pro" in diagnosis.message
    assert "temperature" in diagnosis.message


def test_a_bad_argument_is_a_400_invalid_argument() -> None:
    (problem,) = check_request("gemini-2.5-flash", "hi", {"candidateCount": 9})
    diagnosis = problem.diagnosis()
    assert (diagnosis.http_status, diagnosis.grpc_status) == (400, "INVALID_ARGUMENT")
    assert diagnosis.category is Category.BAD_REQUEST


def test_warnings_alone_do_not_make_a_rejection() -> None:
    problems = check_request("gemini-2.5-flsh", "hi", None)
    assert [p.severity for p in problems] == ["warning"]
    with pytest.raises(ValueError, match="severity 'error'"):
        rejection_diagnosis(problems)


def test_rejection_is_a_request_rejected_carrying_the_diagnosis_and_no_attempts() -> None:
    error = rejection(check_request("gemini-2.5-flash", "", None), model="gemini-2.5-flash")
    assert isinstance(error, RequestRejected)
    assert error.attempts == ()
    assert error.diagnosis.category is Category.BAD_REQUEST
    assert str(error).startswith("gemini-2.5-flash: Rejected before sending")


def test_values_that_look_like_keys_never_reach_a_message() -> None:
    key = "AIza" + "S" * 35
    problems = check_request("gemini-2.5-flash", "hi", {"temperature": key})
    assert problems
    assert all(key not in p.explain(lang) for p in problems for lang in ("en", "zh"))
