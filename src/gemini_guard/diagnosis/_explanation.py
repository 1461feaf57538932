"""What an explanation is made of: its shape (`Explanation`), its language, and the
case it is written for (`Ctx`: the Diagnosis, the language, the moment).

Below the catalog of texts (`_catalog`, `_catalog_quiet`, `_vertex`), which fill these
in, and below `_explain`, which picks the builder and renders the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gemini_guard.diagnosis._model import Diagnosis, QuotaViolation, RecentRate

__all__ = ["Ctx", "Explanation", "Lang", "format_seconds", "normalize_lang", "render"]

Lang = Literal["en", "zh"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """One case explained: a one-line title, the cause, the steps to fix it."""

    lang: Lang
    title: str
    cause: str
    steps: tuple[str, ...]
    guard: str  # what gemini-guard does with this category


def normalize_lang(lang: object) -> Lang:
    """ "zh", "zh-CN", "zh_TW.UTF-8", "ZH" mean Chinese; anything else means English."""
    if isinstance(lang, str) and lang.strip().lower().replace("-", "_").split("_")[0] == "zh":
        return "zh"
    return "en"


def render(exp: Explanation) -> str:
    """Plain text: title, cause, numbered steps, and what gemini-guard does."""
    heading = {"en": ("What to do:", "gemini-guard: "), "zh": ("怎么办：", "gemini-guard 的处理：")}
    todo, guard = heading[exp.lang]
    lines = [exp.title, "", exp.cause, "", todo]
    lines += [f"  {number}. {step}" for number, step in enumerate(exp.steps, start=1)]
    lines += ["", f"{guard}{exp.guard}"]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Ctx:
    d: Diagnosis
    lang: Lang
    now: float
    recent: RecentRate | None = None  # the caller's own rate, when it told it

    def t(self, en: str, zh: str) -> str:
        return zh if self.lang == "zh" else en

    @property
    def lowered(self) -> str:
        return f"{self.d.message} {self.d.reason or ''}".lower()

    def model(self) -> str:
        if self.d.quota is not None and self.d.quota.model:
            return self.d.quota.model
        return self.t("this model", "该模型")

    def unit(self, quota: QuotaViolation) -> str:
        if quota.unit == "tokens":
            return self.t("input tokens", "输入 token")
        return self.t("requests", "请求")

    def tier(self, quota: QuotaViolation) -> str:
        return (
            self.t("free tier", "免费层级")
            if quota.tier == "free"
            else self.t("paid tier", "付费层级")
        )

    def seconds(self, value: float) -> str:
        return format_seconds(value, self.lang)


def format_seconds(value: float, lang: Lang) -> str:
    """37 -> "37 s" / "37 秒"; 0.8566 -> "0.86 s"; 4000 -> "1 h 6 min" / "1 小时 6 分钟"."""
    zh = lang == "zh"
    if value < 1:
        return f"{value:.2f} 秒" if zh else f"{value:.2f} s"
    if value < 120:
        shown = f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"
        return f"{shown} 秒" if zh else f"{shown} s"
    minutes = round(value / 60)
    if minutes < 120:
        return f"{minutes} 分钟" if zh else f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} 小时 {rest} 分钟" if zh else f"{hours} h {rest} min"
