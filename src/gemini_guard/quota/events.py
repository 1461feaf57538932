"""Events the quota limiter emits through its `on_event` hook (frozen values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "LimitLearned",
    "LimitRecovered",
    "Metric",
    "PhantomRateLimit",
    "StoreDegraded",
    "StoreRecovered",
]

Metric = Literal["rpm", "tpm", "rpd", "tpd"]

_UNITS: dict[str, str] = {"rpm": "RPM", "tpm": "input TPM", "rpd": "RPD", "tpd": "TPD"}


@dataclass(frozen=True, slots=True)
class LimitLearned:
    """The server enforces a lower limit than the limiter used: it now paces by it.

    `source` is "quota_value" (a 429 body said so) or "unexpected_429" (a 429 came
    while the ledger had room: the limit was cut by a multiplicative decrease).
    """

    project: str
    model: str
    metric: Metric
    enforced: int
    configured: int | None
    previous: int | None
    source: Literal["quota_value", "unexpected_429"]
    at: float  # wall seconds

    @property
    def message(self) -> str:
        configured = "nothing" if self.configured is None else str(self.configured)
        return (
            f"server enforces about {self.enforced} {_UNITS[self.metric]} on {self.model} "
            f"(project {self.project}), configured {configured}"
        )


@dataclass(frozen=True, slots=True)
class LimitRecovered:
    """A quiet period passed: the effective limit went back up (never above the ceiling)."""

    project: str
    model: str
    metric: Metric
    effective: int
    ceiling: int
    at: float


_TIERS_EN = {"free": "free tier", "tier1": "Tier 1", "tier2": "Tier 2", "tier3": "Tier 3"}
_TIERS_ZH = {"free": "免费层级", "tier1": "Tier 1", "tier2": "Tier 2", "tier3": "Tier 3"}


def _share(rate: int, limit: int) -> str:
    share = 100.0 * rate / limit
    return f"{share:.1f}%" if share < 10 else f"{share:.0f}%"


@dataclass(frozen=True, slots=True)
class PhantomRateLimit:
    """Bare 429s (no quota named) that are not the project's limit: they came at a
    small share of it, or at a rate the server had just admitted. The limiter keeps
    pacing by `limit` and the Guard retries them as transient capacity errors.

    `refused`: such 429s in the last minute; `rate`: requests the server admitted
    meanwhile (this process's); `limit`: the requests per minute paced by;
    `tier`: "free", "tier1", ... when configured (None for "auto").
    """

    project: str
    model: str
    refused: int
    rate: int
    limit: int
    tier: str | None
    at: float  # wall seconds

    def _where(self, lang: str) -> str:
        names = _TIERS_ZH if lang == "zh" else _TIERS_EN
        tier = names.get(self.tier or "")
        if lang == "zh":
            return f"{tier}限额" if tier else "限额"
        return f"your {tier} limit" if tier else "your limit"

    @property
    def message(self) -> str:
        return (
            f"{self.refused} bare 429s on {self.model} (project {self.project}) in the last "
            f"minute, at {self.rate} requests per minute: 429s at {_share(self.rate, self.limit)} "
            f"of {self._where('en')} ({self.limit} RPM). This looks like the phantom-429 problem "
            "Google acknowledged in December 2025 (or shared capacity running short), not your "
            "quota: check the rate-limit page (https://ai.dev/usage?tab=rate-limit) and "
            "contact support with the times of these 429s. Pacing stays at "
            f"{self.limit} RPM; the 429s are retried."
        )

    @property
    def message_zh(self) -> str:
        return (
            f"{self.model}（项目 {self.project}）在过去一分钟收到 {self.refused} 个"
            f"不带配额详情的 429，而请求速率只有每分钟 {self.rate} 次："
            f"429 出现在{self._where('zh')}"
            f"（{self.limit} RPM）的 {_share(self.rate, self.limit)}。这看起来是 Google 在 "
            "2025 年 12 月承认的“幻影 429”问题（或共享算力不足），而不是你的配额：请查看速率限制"
            "页面（https://ai.dev/usage?tab=rate-limit），并带上这些 429 的时间联系支持。"
            f"限速保持在 {self.limit} RPM，这些 429 会被重试。"
        )


@dataclass(frozen=True, slots=True)
class StoreDegraded:
    """The shared store failed; the limiter paces locally until it returns."""

    store: str  # the URL, without credentials
    error: str
    at: float


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """The shared store answers again; the limiter uses it again."""

    store: str
    at: float
