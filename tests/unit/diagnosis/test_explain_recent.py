"""A bare 429 explained with the caller's recent rate: far below the limit, it is
not the caller's quota (the phantom 429s of December 2025, shared capacity)."""

from __future__ import annotations

import pytest

from gemini_guard.diagnosis import Diagnosis, RecentRate, diagnose_http

PHANTOM = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    }
}
NAMED = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_paid_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                        "quotaValue": "150",
                    }
                ],
            }
        ],
    }
}


def bare() -> Diagnosis:
    return diagnose_http(429, PHANTOM)


def test_far_below_the_limit_a_bare_429_is_explained_as_not_your_quota() -> None:
    text = bare().explain(now=0.0, recent=RecentRate(requests=1, limit=300, tier="tier1"))
    assert text.startswith("429 at 0.3% of your Tier 1 limit: not your quota")
    assert "phantom-429 problem Google acknowledged in December 2025" in text
    assert "contact Google support" in text
    assert "keeps pacing at the limit it knows" in text
    zh = bare().explain("zh", now=0.0, recent=RecentRate(requests=1, limit=300, tier="tier1"))
    assert zh.startswith("429 出现在Tier 1限额的 0.3%")
    assert "幻影 429" in zh


@pytest.mark.parametrize(
    "recent",
    [
        None,  # nothing known: the generic text
        RecentRate(requests=120, limit=150),  # near the limit: it may well be one
        RecentRate(requests=3),  # no limit to compare with
    ],
)
def test_otherwise_the_generic_explanation_stands(recent: RecentRate | None) -> None:
    text = bare().explain(now=0.0, recent=recent)
    assert text.startswith("Rate limited (429 RESOURCE_EXHAUSTED) without quota details")


def test_a_429_naming_its_quota_is_the_quota_whatever_the_rate() -> None:
    text = diagnose_http(429, NAMED).explain(now=0.0, recent=RecentRate(requests=1, limit=150))
    assert text.startswith("Per-minute quota exceeded")


def test_a_recent_rate_is_validated() -> None:
    with pytest.raises(ValueError, match="requests must be >= 0"):
        RecentRate(requests=-1)
    with pytest.raises(ValueError, match="limit > 0"):
        RecentRate(requests=1, limit=0)
