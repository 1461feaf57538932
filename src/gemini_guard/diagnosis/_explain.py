"""Diagnosis.explain(): the cause and the fix of one failure, in English or Chinese.

`explanation()` builds a structured `Explanation` (title, cause, steps, what
gemini-guard does) from the texts in `_catalog`; `explain()` renders it as plain text.
Everything is computed from the Diagnosis and `now`, so the same case always reads
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gemini_guard.diagnosis._model import Diagnosis, RecentRate

__all__ = ["Explanation", "Lang", "explain", "explanation", "normalize_lang"]

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


def _now(now: float | None) -> float:
    if now is not None:
        return now
    from gemini_guard.clock import SystemClock

    return SystemClock().time()


def explanation(
    diagnosis: Diagnosis,
    lang: object = "en",
    *,
    now: float | None = None,
    recent: RecentRate | None = None,
) -> Explanation:
    """The structured explanation of `diagnosis` in `lang` (see `normalize_lang`);
    `recent`: the caller's own rate when it came, when known."""
    from gemini_guard.diagnosis._catalog import build

    return build(diagnosis, normalize_lang(lang), now=_now(now), recent=recent)


def render(exp: Explanation) -> str:
    """Plain text: title, cause, numbered steps, and what gemini-guard does."""
    heading = {"en": ("What to do:", "gemini-guard: "), "zh": ("怎么办：", "gemini-guard 的处理：")}
    todo, guard = heading[exp.lang]
    lines = [exp.title, "", exp.cause, "", todo]
    lines += [f"  {number}. {step}" for number, step in enumerate(exp.steps, start=1)]
    lines += ["", f"{guard}{exp.guard}"]
    return "\n".join(lines)


def explain(
    diagnosis: Diagnosis,
    lang: object = "en",
    *,
    now: float | None = None,
    recent: RecentRate | None = None,
) -> str:
    """The cause and the fix of `diagnosis` as text, in English or Chinese."""
    return render(explanation(diagnosis, lang, now=now, recent=recent))
