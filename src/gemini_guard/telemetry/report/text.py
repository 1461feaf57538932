"""The report's written summary and key figures, for a terminal, in English or Chinese."""

from __future__ import annotations

from typing import Literal

from gemini_guard.telemetry.report.analysis import ReportData, clock_text

__all__ = ["render_text"]

# The latency table's heading: (first column, the rest), per language.
_HEADINGS = {
    "en": ("latency (s)", "calls     p50     p90     p99"),
    "zh": ("延迟（秒）", " 调用     p50     p90     p99"),
}


def render_text(data: ReportData, *, lang: Literal["en", "zh"] = "en") -> str:
    summary = data.summary_zh if lang == "zh" and data.summary_zh else data.summary
    if not data.columns:
        return "\n".join(summary) + "\n"
    lines = [f"{clock_text(data.start)}–{clock_text(data.end)} UTC", ""]
    lines += [f"- {line}" for line in summary]
    if data.latency:
        first, rest = _HEADINGS[lang]
        # a Chinese character takes two columns of a terminal
        shown = len(first) * (2 if lang == "zh" else 1)
        width = max(shown, *(len(m) for m in data.latency))
        lines += ["", first + " " * (width - shown) + "  " + rest]
        for model, (n, p50, p90, p99) in data.latency.items():
            lines.append(f"{model:<{width}}  {n:>5} {p50:>7.2f} {p90:>7.2f} {p99:>7.2f}")
    return "\n".join(lines) + "\n"
