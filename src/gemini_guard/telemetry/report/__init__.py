"""`gemini-guard report`: a run's events as one self-contained HTML page, or as text.

data = analyse(load_events("events.jsonl"))
Path("report.html").write_text(render_html(data), encoding="utf-8")
print(render_text(data))
"""

from pathlib import Path

from gemini_guard.telemetry.report.analysis import Episode, ReportData, analyse, load_events
from gemini_guard.telemetry.report.html import render_html
from gemini_guard.telemetry.report.text import render_text

__all__ = [
    "Episode",
    "ReportData",
    "analyse",
    "load_events",
    "render_html",
    "render_text",
    "write_report",
]


def write_report(
    events: str | Path, output: str | Path | None = None, *, tier: str | None = None
) -> Path:
    """The HTML report of the JSONL file `events`, written to `output` (default: the
    events file with .html); returns where it was written."""
    source = Path(events)
    target = Path(output) if output is not None else source.with_suffix(".html")
    page = render_html(analyse(load_events(source), tier=tier))
    target.write_text(page, encoding="utf-8")
    return target
