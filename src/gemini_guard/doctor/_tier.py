"""The tier the API's quota ids reveal, against the one the configuration claims."""

from __future__ import annotations

from collections.abc import Iterable

from gemini_guard.diagnosis import Diagnosis
from gemini_guard.doctor._base import CheckResult, Text, _result

TITLE_TIER = Text("Tier", "层级")


def check_tier(diagnoses: Iterable[Diagnosis], configured: str | None) -> CheckResult:
    """The tier the API's quota ids reveal (…-FreeTier / paid), against the configured one."""
    if configured == "auto":  # the Guard's default: it learns the tier, it claims none
        configured = None
    seen = [d.quota for d in diagnoses if d.quota is not None]
    if not seen:
        claim = f" (configured: {configured})" if configured else ""
        claim_zh = f"（配置为 {configured}）" if configured else ""
        return _result(
            "tier",
            "skip",
            TITLE_TIER,
            f"not determined: no quota error was seen{claim}; a 429's quota id names the tier",
            f"无法确定：未出现配额错误{claim_zh}；429 错误中的配额 ID 会标明层级",
        )
    quota = seen[0]
    evidence = quota.quota_id or quota.metric or "quota error"
    seen_free = quota.tier == "free"
    if configured is not None and (configured == "free") != seen_free:
        fix = (
            Text(
                "the key's project is on the free tier: link a billing account to that "
                "project in Google AI Studio, or use a key of the billed project",
                "该密钥所属项目是免费层级：在 Google AI Studio 为该项目关联结算账号，"
                "或改用已结算项目的密钥",
            )
            if seen_free
            else Text(
                "the project is billed: set tier to its paid tier (tier1, tier2 or tier3) "
                "to use its higher limits",
                "该项目已开通结算：把 tier 设为对应的付费层级（tier1、tier2 或 tier3）"
                "以使用更高限额",
            )
        )
        return _result(
            "tier",
            "warn",
            TITLE_TIER,
            f"configured as {configured}, but the API says {quota.tier} ({evidence})",
            f"配置为 {configured}，但 API 显示为 {quota.tier}（{evidence}）",
            fix,
        )
    return _result(
        "tier",
        "ok",
        TITLE_TIER,
        f"{quota.tier} tier ({evidence})",
        f"{'免费' if seen_free else '付费'}层级（{evidence}）",
    )
