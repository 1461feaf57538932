"""Logs with several errors, and texts larger than anything pasted by hand."""

from __future__ import annotations

import json

from gemini_guard import Category, diagnose
from gemini_guard.diagnosis._log import MAX_LOG_CHARS, diagnose_log

RATE = (
    "ERROR google.genai.errors.ClientError: 429 RESOURCE_EXHAUSTED. {'error': {'code': 429, "
    "'message': 'Resource has been exhausted (e.g. check quota).', 'status': 'RESOURCE_EXHAUSTED'}}"
)
OVERLOADED = (
    'ERROR call failed: {"error": {"code": 503, "message": "The model is overloaded. '
    'Please try again later.", "status": "UNAVAILABLE"}}'
)
BAD_KEY = (
    'ERROR {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",'
    ' "status": "INVALID_ARGUMENT"}}'
)


def test_each_distinct_error_is_reported_with_its_count() -> None:
    log = "\n".join(
        [
            "INFO start",
            RATE,
            "INFO retrying",
            RATE,
            RATE,
            OVERLOADED,
            "INFO ok",
            BAD_KEY,
            OVERLOADED,
        ]
    )
    report = diagnose_log(log)
    got = [(e.diagnosis.category, e.count, e.first_line) for e in report.entries]
    assert got == [
        (Category.RATE_LIMITED, 3, 2),
        (Category.OVERLOADED, 2, 6),
        (Category.INVALID_API_KEY, 1, 8),
    ]
    assert not report.truncated
    # diagnose() itself still answers "the last error".
    assert diagnose(log).category is Category.OVERLOADED


def test_a_multi_line_body_counts_once() -> None:
    body = json.dumps(
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
        indent=2,
    )
    report = diagnose_log(f"INFO a\nERROR failed: {body}\nINFO b\n")
    assert [(e.diagnosis.category, e.count) for e in report.entries] == [(Category.OVERLOADED, 1)]


def test_a_text_without_errors_gives_one_unknown_entry() -> None:
    report = diagnose_log("all good\nnothing here")
    assert [e.diagnosis.category for e in report.entries] == [Category.UNKNOWN]


def test_an_error_at_the_start_of_a_large_text_is_found() -> None:
    # Before, only the last 200,000 characters were read: this error was lost.
    filler = "INFO routine line with nothing wrong in it\n" * 20_000  # ~860,000 characters
    text = OVERLOADED + "\n" + filler
    assert len(text) > 800_000
    assert diagnose(text).category is Category.OVERLOADED
    report = diagnose_log(text)
    assert [e.diagnosis.category for e in report.entries] == [Category.OVERLOADED]
    assert report.chars_read == report.chars_total == len(text)


def test_beyond_the_limit_the_report_says_what_was_read() -> None:
    assert MAX_LOG_CHARS >= 1_000_000
    text = "x" * 5_000 + "\n" + OVERLOADED
    report = diagnose_log(text, max_chars=1_000)
    assert report.truncated
    assert report.chars_total == len(text)
    assert report.chars_read == 1_000
    assert report.entries[0].diagnosis.category is Category.OVERLOADED


def test_the_fixes_read_in_the_explanations() -> None:
    thought = diagnose(
        '{"error": {"code": 400, "message": "Function call is missing a thought_signature in '
        'functionCall parts.", "status": "INVALID_ARGUMENT"}}'
    )
    assert "thought_signature" in thought.explain("en")
    assert "thought_signature" in thought.explain("zh")
    cancelled = diagnose(
        '{"error": {"code": 499, "message": "The operation was cancelled.", "status": "CANCELLED"}}'
    )
    assert cancelled.retryable
    assert "Google's side" in cancelled.explain("en")
    local = diagnose("grpc StatusCode.CANCELLED: Locally cancelled by application!")
    assert local.category is not Category.SERVER_ERROR
