"""The report's written summary and key figures, for a terminal."""

from __future__ import annotations

from gemini_guard.telemetry.report.analysis import ReportData, clock_text

__all__ = ["render_text"]


def render_text(data: ReportData) -> str:
    if not data.columns:
        return "\n".join(data.summary) + "\n"
    lines = [f"{clock_text(data.start)}–{clock_text(data.end)} UTC", ""]
    lines += [f"- {line}" for line in data.summary]
    if data.latency:
        width = max(len("latency (s)"), *(len(m) for m in data.latency))
        lines += ["", f"{'latency (s)':<{width}}  calls     p50     p90     p99"]
        for model, (n, p50, p90, p99) in data.latency.items():
            lines.append(f"{model:<{width}}  {n:>5} {p50:>7.2f} {p90:>7.2f} {p99:>7.2f}")
    return "\n".join(lines) + "\n"
