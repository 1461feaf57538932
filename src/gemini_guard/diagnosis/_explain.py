"""Diagnosis.explain(): the cause and the fix of one failure, in English or Chinese.

`explanation()` builds a structured `Explanation` (title, cause, steps, what
gemini-guard does) from the texts in `_catalog`; `explain()` renders it as plain text.
Everything is computed from the Diagnosis and `now`, so the same case always reads
the same way.
"""

from __future__ import annotations

from gemini_guard.diagnosis._catalog import build
from gemini_guard.diagnosis._explanation import Explanation, Lang, normalize_lang, render
from gemini_guard.diagnosis._model import Diagnosis, RecentRate

__all__ = ["Explanation", "Lang", "explain", "explanation", "normalize_lang"]


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
    return build(diagnosis, normalize_lang(lang), now=_now(now), recent=recent)


def explain(
    diagnosis: Diagnosis,
    lang: object = "en",
    *,
    now: float | None = None,
    recent: RecentRate | None = None,
) -> str:
    """The cause and the fix of `diagnosis` as text, in English or Chinese."""
    return render(explanation(diagnosis, lang, now=now, recent=recent))
