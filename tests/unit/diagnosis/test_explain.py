"""explain(): concrete cause and fix for each case, in English and Chinese."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator

import pytest

from gemini_guard import Category, Diagnosis, QuotaViolation, diagnose
from gemini_guard.diagnosis import diagnose_http
from gemini_guard.diagnosis._catalog import format_seconds
from gemini_guard.diagnosis._explain import explanation, normalize_lang
from gemini_guard.pacific import next_reset

CJK = re.compile(r"[\u4e00-\u9fff]")


def _day(model: str = "gemini-2.5-pro", limit: int = 100) -> Diagnosis:
    return Diagnosis(
        http_status=429,
        grpc_status="RESOURCE_EXHAUSTED",
        reason=None,
        message="You exceeded your current quota.",
        category=Category.DAILY_QUOTA_EXHAUSTED,
        retryable=False,
        retry_after=21.0,
        quota=QuotaViolation(
            scope="day",
            unit="requests",
            tier="free",
            limit=limit,
            model=model,
            quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            metric="generativelanguage.googleapis.com/generate_content_free_tier_requests",
        ),
    )


@pytest.fixture
def shanghai() -> Iterator[None]:
    """Local time of this process set to UTC+8 (no DST), restored afterwards."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    mp.undo()
    time.tzset()


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp()


def test_daily_reset_in_pacific_and_local_time_in_winter(shanghai: None) -> None:
    now = _utc(2026, 1, 15, 12, 0)  # 04:00 PST
    text = _day().explain("en", now=now)
    assert "2026-01-16 00:00 PST (UTC-08:00)" in text
    assert "2026-01-16 16:00 CST (UTC+08:00)" in text
    assert "20 h 0 min from now" in text
    assert "gemini-2.5-pro" in text
    assert "100 requests per day" in text
    assert "10,000 requests per day instead of 100" in text  # Tier 1 row of the shipped table
    assert "misleading" in text  # the 21 s retry delay is not to be trusted


def test_daily_reset_follows_daylight_saving_time(shanghai: None) -> None:
    now = _utc(2026, 7, 1, 6, 30)  # 23:30 PDT on June 30
    text = _day().explain("en", now=now)
    assert "2026-07-01 00:00 PDT (UTC-07:00)" in text
    assert "2026-07-01 15:00 CST (UTC+08:00)" in text
    assert "30 min from now" in text


def test_daily_in_chinese(shanghai: None) -> None:
    text = _day().explain("zh", now=_utc(2026, 1, 15, 12, 0))
    assert "每日配额已用完" in text
    assert "太平洋时间午夜重置" in text
    assert "2026-01-16 16:00 CST (UTC+08:00)" in text
    assert "20 小时 0 分钟" in text
    assert "开通结算" in text


def test_daily_suggests_other_models_than_the_one_that_failed() -> None:
    text = _day(model="gemini-2.5-flash", limit=250).explain("en", now=0.0)
    assert "for example gemini-2.5-flash-lite)" in text


def test_per_minute_names_the_servers_delay_and_the_pace() -> None:
    d = diagnose_http(
        429,
        {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": "quota",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                                "quotaDimensions": {"model": "gemini-2.5-flash"},
                                "quotaValue": "10",
                            }
                        ],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
                ],
            }
        },
    )
    en = d.explain("en", now=0.0)
    assert "Wait 37 s" in en
    assert "one every 6 s" in en
    assert "2,000 requests per minute instead of 10" in en
    zh = d.explain("zh", now=0.0)
    assert "等待 37 秒" in zh
    assert "每分钟最多 10 次" in zh


def test_limit_zero_says_waiting_does_not_help() -> None:
    d = diagnose(
        "429 Quota exceeded for metric: x/generate_content_free_tier_requests, "
        "limit: 0, model: gemini-2.5-pro"
    )
    assert d.category is Category.NO_QUOTA
    text = d.explain("en", now=0.0)
    assert "Waiting does not help" in text
    assert "enable billing" in text
    assert "gemini-2.5-flash" in text


def test_overloaded_points_to_lighter_models_and_status_page() -> None:
    text = diagnose(503).explain("en", now=0.0)
    assert "gemini-2.5-flash-lite" in text
    assert "https://aistudio.google.com/status" in text


def test_invalid_and_leaked_keys_point_to_the_key_page() -> None:
    invalid = diagnose(
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
            }
        }
    )
    leaked = diagnose(
        {
            "error": {
                "code": 403,
                "message": "Your API key was reported as leaked. Please use another API key.",
                "status": "PERMISSION_DENIED",
            }
        }
    )
    for d in (invalid, leaked):
        assert d.category is Category.INVALID_API_KEY
        assert "https://aistudio.google.com/apikey" in d.explain("en", now=0.0)
    assert "leaked" in leaked.explain("en", now=0.0)
    assert "泄露" in leaked.explain("zh", now=0.0)


def test_precondition_mentions_billing_and_region() -> None:
    d = diagnose_http(
        400,
        {
            "error": {
                "code": 400,
                "message": "User location is not supported for the API use.",
                "status": "FAILED_PRECONDITION",
            }
        },
    )
    text = d.explain("en", now=0.0)
    assert "region" in text
    assert "billing" in text
    assert "地区" in d.explain("zh", now=0.0)


@pytest.mark.parametrize("category", list(Category))
def test_every_category_reads_in_both_languages(category: Category) -> None:
    d = Diagnosis(
        http_status=None,
        grpc_status=None,
        reason=None,
        message="",
        category=category,
        retryable=False,
    )
    en = explanation(d, "en", now=0.0)
    zh = explanation(d, "zh", now=0.0)
    assert en.title
    assert en.cause
    assert en.steps
    assert en.guard
    assert not CJK.search(en.title + en.cause + "".join(en.steps))
    assert CJK.search(zh.title)
    assert CJK.search(zh.cause)
    assert all(CJK.search(s) for s in zh.steps)
    assert len(zh.steps) == len(en.steps)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh_TW.UTF-8", "zh"),
        ("ZH", "zh"),
        ("en", "en"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_language_names(lang: object, expected: str) -> None:
    assert normalize_lang(lang) == expected


def test_unknown_languages_fall_back_to_english() -> None:
    d = diagnose(503)
    assert d.explain("fr", now=0.0) == d.explain("en", now=0.0)
    assert d.explain("zh-CN", now=0.0) == d.explain("zh", now=0.0)


def test_now_defaults_to_the_system_clock() -> None:
    # Without `now` the reset countdown is taken from the real clock: at most a day away.
    # The countdown is read between the two readings of the clock around the call.
    before = time.time()
    text = _day().explain("en")
    after = time.time()
    shown = {format_seconds(next_reset(t) - t, "en") for t in (before, after)}
    assert any(f"{wait} from now" in text for wait in shown), (shown, text)
