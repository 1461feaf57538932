"""Diagnoses for the failures the limiter raises itself (no request was sent)."""

from __future__ import annotations

from typing import Literal

from gemini_guard.diagnosis import Category, Diagnosis, QuotaViolation

__all__ = ["day_spent", "too_large", "too_many_items", "wait_too_long"]


def too_large(*, model: str, tokens: int, tpm: int, tier: Literal["free", "paid"]) -> Diagnosis:
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason="QUOTA_REQUEST_TOO_LARGE",
        message=(
            f"the request's {tokens} input tokens exceed the {tpm} input tokens per minute "
            f"allowed for {model}: it can never be sent. Shorten the prompt or split it."
        ),
        category=Category.REQUEST_TOO_LARGE,
        retryable=False,
        quota=QuotaViolation(
            scope="minute",
            unit="tokens",
            tier=tier,
            limit=tpm,
            model=model,
            quota_id=None,
            metric=None,
        ),
    )


def too_many_items(*, model: str, items: int, rpm: int, tier: Literal["free", "paid"]) -> Diagnosis:
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason="QUOTA_REQUEST_TOO_LARGE",
        message=(
            f"the call's {items} items count as {items} requests, more than the {rpm} "
            f"requests per minute allowed for {model}: it can never be sent. Send at most "
            f"{rpm} items per call."
        ),
        category=Category.REQUEST_TOO_LARGE,
        retryable=False,
        quota=QuotaViolation(
            scope="minute",
            unit="requests",
            tier=tier,
            limit=rpm,
            model=model,
            quota_id=None,
            metric=None,
        ),
    )


def wait_too_long(*, model: str, project: str, wait: float, max_wait: float) -> Diagnosis:
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason="QUOTA_WAIT_TOO_LONG",
        message=(
            f"{model} in project {project} has no quota for {wait:.1f}s, longer than the "
            f"allowed wait of {max_wait:.1f}s. Raise max_wait, add a project, or slow down."
        ),
        category=Category.RATE_LIMITED,
        retryable=True,
        retry_after=wait,
    )


def day_spent(
    *, model: str, project: str, detail: str, limit: int | None, tier: Literal["free", "paid"]
) -> Diagnosis:
    return Diagnosis(
        http_status=None,
        grpc_status=None,
        reason="QUOTA_DAY_SPENT",
        message=(
            f"the per-day quota of {model} in project {project} is spent ({detail}); "
            "it resets at midnight Pacific time. Use another model or project until then."
        ),
        category=Category.DAILY_QUOTA_EXHAUSTED,
        retryable=False,
        quota=QuotaViolation(
            scope="day",
            unit="requests",
            tier=tier,
            limit=limit,
            model=model,
            quota_id=None,
            metric=None,
        ),
    )
