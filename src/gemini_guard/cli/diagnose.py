"""`gemini-guard diagnose`: explain a Gemini API error pasted, piped or saved in a file."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gemini_guard.cli import main
from gemini_guard.cli._common import EXIT_OK, EXIT_PROBLEM, GuardCommand, json_option
from gemini_guard.cli._i18n import _, current_lang, lang_from_env
from gemini_guard.diagnosis import (
    QUICK_TABLE,
    Category,
    Diagnosis,
    Explanation,
    Lang,
    LogReport,
    RecentRate,
    Sample,
    diagnose,
    diagnose_log,
    explanation,
    format_seconds,
    load_samples,
    variants_of,
)

__all__ = ["diagnose_command", "lang_from_env"]

EXIT_UNDERSTOOD = EXIT_OK
EXIT_NOT_UNDERSTOOD = EXIT_PROBLEM  # the command ran and could not make a diagnosis
_BARE_CODE = re.compile(r"^\s*([1-5]\d\d)\s*$")


def _read_source(parts: Sequence[str]) -> str:
    """The error text: from stdin for "-" (or no argument on a pipe), a file, or the words."""
    if not parts or list(parts) == ["-"]:
        if not parts and sys.stdin.isatty():
            raise click.UsageError(
                _(
                    "give the error to explain: as an argument (quote it), a file name, or '-' "
                    "to read standard input; or use --table or --samples."
                )
            )
        return sys.stdin.read()
    if len(parts) == 1:
        candidate = parts[0]
        if len(candidate) < 4096 and "\n" not in candidate:
            path = Path(candidate).expanduser()
            try:
                if path.is_file():
                    return path.read_text("utf-8", errors="replace")
            except OSError as exc:
                raise click.UsageError(
                    _("cannot read {path}: {why}", path=candidate, why=exc.strerror)
                ) from exc
        return candidate
    return " ".join(parts)


def _as_json(
    diagnosis: Diagnosis,
    exp: Explanation,
    *,
    label: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = dataclasses.asdict(diagnosis)
    data["category"] = diagnosis.category.value
    data["understood"] = diagnosis.category is not Category.UNKNOWN
    data["is_problem"] = diagnosis.is_problem
    data["explanation"] = {
        "lang": exp.lang,
        "title": exp.title,
        "cause": exp.cause,
        "steps": list(exp.steps),
        "guard": exp.guard,
    }
    if label is not None:
        data["label"] = label
    data.update(extra or {})
    return data


def _facts(diagnosis: Diagnosis, lang: Lang) -> Table:
    zh = lang == "zh"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    status = " ".join(
        str(part) for part in (diagnosis.http_status, diagnosis.grpc_status) if part is not None
    )
    grid.add_row("状态" if zh else "status", status or "-")
    grid.add_row("类别" if zh else "category", diagnosis.category.value)
    if diagnosis.retryable:
        when = (
            format_seconds(diagnosis.retry_after, lang)
            if diagnosis.retry_after is not None
            else ("退避" if zh else "backoff")
        )
        retry = f"是，{when}后" if zh else f"yes, after {when}"
    else:
        retry = "否" if zh else "no"
        if diagnosis.retry_after is not None:
            server = format_seconds(diagnosis.retry_after, lang)
            retry += (
                f"（服务器给出 {server}，但不应采用）"
                if zh
                else f" (the server said {server}; ignore it)"
            )
    grid.add_row("重试" if zh else "retry", retry)
    if diagnosis.reason:
        grid.add_row("原因码" if zh else "reason", diagnosis.reason)
    quota = diagnosis.quota
    if quota is not None:
        words = [
            f"{quota.scope}",
            quota.unit,
            quota.tier,
            f"limit={quota.limit}" if quota.limit is not None else "",
            quota.model or "",
        ]
        grid.add_row("配额" if zh else "quota", " · ".join(w for w in words if w))
        if quota.quota_id:
            grid.add_row("quotaId", quota.quota_id)
    if diagnosis.message:
        message = " ".join(diagnosis.message.split())
        message = message if len(message) <= 240 else message[:240] + "…"
        grid.add_row("消息" if zh else "message", Text(message, style="dim"))
    return grid


def _panel(diagnosis: Diagnosis, exp: Explanation, *, label: str | None = None) -> Panel:
    zh = exp.lang == "zh"
    steps = Table.grid(padding=(0, 1))
    steps.add_column(style="bold", no_wrap=True, justify="right")
    steps.add_column()
    for number, step in enumerate(exp.steps, start=1):
        steps.add_row(f" {number}.", step)
    body = Group(
        Text(exp.title, style="bold"),
        Text(""),
        _facts(diagnosis, exp.lang),
        Text(""),
        Text(exp.cause),
        Text(""),
        Text("怎么办：" if zh else "What to do:", style="bold green"),
        steps,
        Text(""),
        Text.assemble(("gemini-guard" + ("：" if zh else ": "), "bold magenta"), exp.guard),
    )
    if diagnosis.category is Category.UNKNOWN:
        border = "bright_black"
    elif not diagnosis.is_problem:
        border = "green"
    elif diagnosis.retryable:
        border = "yellow"
    else:
        border = "red"
    return Panel(body, title=label, title_align="left", border_style=border, expand=True)


def _console() -> Console:
    # Wide enough for the panels when piped into a file or a pager.
    return Console(width=None if sys.stdout.isatty() else 100, soft_wrap=False, highlight=False)


def _print_table(console: Console, lang: Lang, as_json: bool) -> None:
    zh = lang == "zh"
    if as_json:
        rows = [
            {"code": r.code, "grpc": r.grpc, "cause": r.cause(lang), "fix": r.fix(lang)}
            for r in QUICK_TABLE
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(
        title="Gemini API 错误速查表" if zh else "Gemini API errors: quick reference",
        show_lines=True,
    )
    table.add_column("HTTP", style="bold", no_wrap=True)
    table.add_column("gRPC", no_wrap=True)
    table.add_column("常见原因" if zh else "usual cause")
    table.add_column("解决办法" if zh else "fix")
    for row in QUICK_TABLE:
        table.add_row(row.code, row.grpc, row.cause(lang), row.fix(lang))
    console.print(table)


def _print_many(
    console: Console, items: Sequence[tuple[str, Diagnosis]], lang: Lang, as_json: bool
) -> int:
    explained = [(label, d, explanation(d, lang)) for label, d in items]
    if as_json:
        out = [_as_json(d, exp, label=label) for label, d, exp in explained]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for label, d, exp in explained:
            console.print(_panel(d, exp, label=label))
    understood = all(d.category is not Category.UNKNOWN for _, d, _ in explained)
    return EXIT_UNDERSTOOD if understood else EXIT_NOT_UNDERSTOOD


def _sample_items(samples: Sequence[Sample], lang: Lang) -> list[tuple[str, Diagnosis]]:
    return [(sample.label(lang), sample.diagnosis()) for sample in samples]


@main.command("diagnose", cls=GuardCommand)
@click.argument("source", nargs=-1)
@json_option
@click.option("--table", "show_table", is_flag=True, help="Print the quick reference table.")
@click.option(
    "--samples",
    "show_samples",
    is_flag=True,
    help="Diagnose the sample errors shipped with gemini-guard.",
)
@click.option(
    "--rate",
    type=click.IntRange(min=0),
    default=None,
    help="Requests your project sent to the model in the minute before the error: "
    "a bare 429 far below --limit is explained as what it is (not your quota).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="The model's RPM limit for --rate."
)
@click.option(
    "--tier",
    type=click.Choice(["free", "tier1", "tier2", "tier3"]),
    default=None,
    help="Your tier, named in that explanation.",
)
def diagnose_command(
    source: tuple[str, ...],
    as_json: bool,
    show_table: bool,
    show_samples: bool,
    rate: int | None,
    limit: int | None,
    tier: str | None,
) -> None:
    """Explain a Gemini API error: what it means, whether to retry, how to fix it.

    SOURCE is the error text (quote it), a file holding it, or '-' for standard input;
    whole log lines and tracebacks are fine. A bare status code (e.g. 429) explains that
    code and its usual variants. Exits 0 when the error was understood, 1 when not.
    """
    language: Lang = current_lang()
    console = _console()
    if show_table:
        _print_table(console, language, as_json)
        sys.exit(EXIT_UNDERSTOOD)
    if show_samples:
        demo = [sample for sample in load_samples() if sample.demo]
        sys.exit(_print_many(console, _sample_items(demo, language), language, as_json))

    text = _read_source(source)
    bare = _BARE_CODE.match(text)
    if bare:
        code = int(bare.group(1))
        variants = variants_of(code)
        items = _sample_items(variants, language) if variants else [(str(code), diagnose(code))]
        sys.exit(_print_many(console, items, language, as_json))

    recent = None if rate is None else RecentRate(requests=rate, limit=limit, tier=tier)
    sys.exit(_print_log(console, diagnose_log(text), language, as_json, recent=recent))


def _print_log(
    console: Console,
    report: LogReport,
    lang: Lang,
    as_json: bool,
    *,
    recent: RecentRate | None = None,
) -> int:
    """Each distinct error of the text, with its count; a note when the text was cut."""
    zh = lang == "zh"
    if report.truncated:
        read_mb, total_mb = report.chars_read / 1e6, report.chars_total / 1e6
        click.echo(
            f"注意：文本过长（{total_mb:.1f} M 字符），只读取了最后 {read_mb:.0f} M 字符。"
            if zh
            else f"note: the text is {total_mb:.1f} M characters long; only its last "
            f"{read_mb:.0f} M characters were read.",
            err=True,
        )
    several = len(report.entries) > 1
    if as_json:
        out = [
            _as_json(
                e.diagnosis,
                explanation(e.diagnosis, lang, recent=recent),
                extra={
                    "count": e.count,
                    "first_line": e.first_line,
                    "chars_read": report.chars_read,
                    "chars_total": report.chars_total,
                },
            )
            for e in report.entries
        ]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        if several:
            total = sum(e.count for e in report.entries)
            console.print(
                f"{len(report.entries)} 种不同的错误，共 {total} 次："
                if zh
                else f"{len(report.entries)} different errors, {total} occurrences:"
            )
        for e in report.entries:
            label = None
            if several or e.count > 1:
                label = (
                    f"×{e.count}，首次出现在第 {e.first_line} 行"
                    if zh
                    else f"×{e.count}, first at line {e.first_line}"
                )
            console.print(
                _panel(e.diagnosis, explanation(e.diagnosis, lang, recent=recent), label=label)
            )
    understood = all(e.diagnosis.category is not Category.UNKNOWN for e in report.entries)
    return EXIT_UNDERSTOOD if understood else EXIT_NOT_UNDERSTOOD
