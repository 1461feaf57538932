"""`gemini-guard report EVENTS.jsonl`: what a run went through, as HTML or text."""

from __future__ import annotations

from pathlib import Path

import click

from gemini_guard.cli import main
from gemini_guard.cli._i18n import current_lang
from gemini_guard.errors import ConfigError
from gemini_guard.tiers import TIERS


@main.command()
@click.argument("events", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the HTML page (default: EVENTS with .html).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "text"]),
    default="html",
    show_default=True,
    help="html: a self-contained page; text: the summary, printed.",
)
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default=None,
    help="Also draw this tier's per-minute limits from the model table.",
)
def report(events: Path, output: Path | None, fmt: str, tier: str | None) -> None:
    """Turn a JSONL events file (JsonlSink, [telemetry] jsonl) into a report."""
    from gemini_guard.telemetry.report import analyse, load_events, render_text, write_report
    from gemini_guard.telemetry.report.analysis import EventsFileError

    try:
        data = analyse(load_events(events), tier=tier)
    except ConfigError as exc:
        message = str(exc)
        if current_lang() == "zh" and isinstance(exc, EventsFileError):
            message = exc.message_zh
        raise click.BadParameter(message, param_hint="EVENTS") from None
    if fmt == "text":
        click.echo(render_text(data, lang=current_lang()), nl=False)
        return
    click.echo(str(write_report(events, output, tier=tier)))
