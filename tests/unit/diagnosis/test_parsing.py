"""The pure readers: durations, delays in messages, Retry-After, quota ids, redaction."""

from __future__ import annotations

import pytest

from gemini_guard import diagnose
from gemini_guard.diagnosis._classify import parse_retry_after_header
from gemini_guard.diagnosis._redact import redact
from gemini_guard.diagnosis._wire import parse_duration, parse_quota_id, retry_delay_from_message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("37s", 37.0),
        ("0.856s", 0.856),
        ("21599.960323804s", 21599.960323804),
        (" 5s ", 5.0),
        ("0s", 0.0),
        ({"seconds": 12, "nanos": 500000000}, 12.5),
        ({"seconds": "3"}, 3.0),
        ({"nanos": 250000000}, 0.25),
        (4, 4.0),
        ("37", None),
        ("-1s", None),
        ("1m", None),
        ("abc", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ({"seconds": "x"}, None),
    ],
)
def test_parse_duration(value: object, seconds: float | None) -> None:
    assert parse_duration(value) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Please retry in 37.284115s.", 37.284115),
        ("Please retry in 856.559356ms.", 0.856559356),
        ("please RETRY IN 2 seconds", 2.0),
        ("retry after 30 sec", 30.0),
        ("[violations { } , retry_delay {\n  seconds: 44\n}\n]", 44.0),
        ("Please retry later.", None),
        ("retry in 5 minutes", None),
    ],
)
def test_retry_delay_from_message(message: str, seconds: float | None) -> None:
    got = retry_delay_from_message(message)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("header", "now", "seconds"),
    [
        ("30", None, 30.0),
        ("0", None, 0.0),
        ("1.5", None, 1.5),
        ("-3", None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0, 10.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0, 0.0),  # already past
        ("Wed, 21 Oct 2015 07:28:00 GMT", None, None),  # a date needs a clock reading
        ("soon", 0.0, None),
        ("", None, None),
    ],
)
def test_retry_after_header(header: str, now: float | None, seconds: float | None) -> None:
    assert parse_retry_after_header(header, now=now) == seconds


@pytest.mark.parametrize(
    ("quota_id", "metric", "expected"),
    [
        (
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            None,
            ("minute", "requests", "free"),
        ),
        ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", None, ("day", "requests", "free")),
        (
            "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            None,
            ("minute", "tokens", "free"),
        ),
        ("GenerateContentPaidTierInputTokensPerModelPerMinute", None, ("minute", "tokens", "paid")),
        (
            "GenerateRequestsPerDayPerProjectPerModel",
            "generate_requests_per_model_per_day",
            ("day", "requests", "paid"),
        ),
        (
            "GenerateRequestsPerMinutePerProjectPerModel-PaidTier",
            None,
            ("minute", "requests", "paid"),
        ),
        (
            None,
            "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            ("minute", "requests", "free"),
        ),
        (None, "x/generate_content_free_tier_input_token_count", ("minute", "tokens", "free")),
    ],
)
def test_parse_quota_id(
    quota_id: str | None, metric: str | None, expected: tuple[str, str, str]
) -> None:
    assert parse_quota_id(quota_id, metric) == expected


KEY = "AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE01234"


@pytest.mark.parametrize(
    "text",
    [
        f"https://generativelanguage.googleapis.com/v1/models?key={KEY}",
        "https://example.com/v1/models?alt=sse&key=anything-at-all&x=1",
        f"Permission denied: Consumer 'api_key:{KEY}' has been suspended.",
        "Authorization: Bearer ya29.a0AfH6SMBxxxxxxxxxxxx",
        f"x-goog-api-key: {KEY}",
    ],
)
def test_redact(text: str) -> None:
    out = redact(text)
    assert KEY not in out
    assert "anything-at-all" not in out
    assert "ya29.a0AfH6SMB" not in out
    assert "[REDACTED]" in out


def test_keys_never_reach_the_diagnosis_message() -> None:
    body = {
        "error": {
            "code": 403,
            "message": f"Permission denied: Consumer 'api_key:{KEY}' has been suspended.",
            "status": "PERMISSION_DENIED",
        }
    }
    for value in (
        body,
        f"403 PERMISSION_DENIED. {body!r}",
        f"GET /v1/models?key={KEY} -> 404 Not Found",
    ):
        d = diagnose(value)
        assert KEY not in d.message
        assert KEY not in d.explain("en", now=0.0)
        assert KEY not in d.explain("zh", now=0.0)
        assert KEY not in repr(d)
