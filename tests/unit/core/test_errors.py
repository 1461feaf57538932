"""Errors carry their Diagnosis and attempts; the module docstring draws the whole tree."""

from __future__ import annotations

import inspect

import gemini_guard.errors as errors_module
from gemini_guard import (
    Attempt,
    CallFailed,
    Category,
    DailyQuotaExhausted,
    Diagnosis,
    GuardError,
    StreamInterrupted,
)


def _diagnosis() -> Diagnosis:
    return Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="Quota exceeded",
        category=Category.DAILY_QUOTA_EXHAUSTED,
        retryable=False,
    )


def test_call_errors_carry_diagnosis_and_attempts() -> None:
    attempts = [Attempt(model="gemini-2.5-pro", category=Category.DAILY_QUOTA_EXHAUSTED)]
    err = DailyQuotaExhausted("spent", diagnosis=_diagnosis(), attempts=attempts, reset_at=123.0)
    assert isinstance(err, CallFailed)
    assert isinstance(err, GuardError)
    assert err.diagnosis.category is Category.DAILY_QUOTA_EXHAUSTED
    assert err.attempts == tuple(attempts)
    assert err.reset_at == 123.0


def test_stream_interrupted_keeps_the_partial_text() -> None:
    err = StreamInterrupted("broke", diagnosis=_diagnosis(), partial_text="Once upon")
    assert err.partial_text == "Once upon"


def test_docstring_tree_names_every_error_class() -> None:
    doc = errors_module.__doc__ or ""
    classes = [
        name
        for name, obj in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(obj, GuardError) and obj.__module__ == errors_module.__name__
    ]
    assert classes
    for name in classes:
        assert name in doc, f"{name} is missing from the errors module's docstring tree"
