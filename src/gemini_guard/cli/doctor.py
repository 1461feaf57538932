"""`gemini-guard doctor`: check key, SDK, network, models, tier, store and status page
(on Vertex AI: credentials, project, location, SDK, network, a test call, store, status)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from gemini_guard.cli import main
from gemini_guard.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    TIERS,
    GuardCommand,
    config_option,
    json_option,
    load_cli_config,
    models_option,
    split_models,
)
from gemini_guard.cli._i18n import current_lang
from gemini_guard.clock import SystemClock
from gemini_guard.doctor import (
    DEFAULT_BASE_URL,
    DEFAULT_STATUS_URL,
    ISOLATION_MODEL,
    VERTEX_BASE_URL_ENV,
    VERTEX_STATUS_URL,
    CheckResult,
    DoctorOptions,
    failures,
    run_doctor,
    vertex_base_url,
    wants_vertex,
)

__all__ = ["doctor_command", "render"]

_MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "dim")}


def render(results: list[CheckResult], lang: str, console: Console) -> None:
    """The checklist: one line per check, and the fix under every line that needs one."""
    width = max(len(r.title.in_(lang)) for r in results)
    for result in results:
        mark, colour = _MARKS[result.status]
        title = result.title.in_(lang).ljust(width)
        console.print(
            f"[{colour}]{mark}[/] [bold]{escape(title)}[/]  {escape(result.detail.in_(lang))}",
            soft_wrap=True,
        )
        if result.fix is not None and result.status in ("fail", "warn"):
            arrow = "修复" if lang == "zh" else "fix"
            console.print(
                f"  {' ' * width}  [{colour}]→ {arrow}:[/] {escape(result.fix.in_(lang))}",
                soft_wrap=True,
            )
    failed = failures(results)
    warned = sum(1 for r in results if r.status == "warn")
    if lang == "zh":
        summary = f"{failed} 项失败，{warned} 项警告"
    else:
        summary = f"{failed} failed, {warned} warning{'s' if warned != 1 else ''}"
    console.print(f"\n[{'red' if failed else 'green'}]{summary}[/]", soft_wrap=True)


def _configuration(path: Path | None) -> dict[str, Any]:
    """What the doctor checks from the app's configuration (the same loader as the Guard).

    Read when --config is given, GEMINI_GUARD_CONFIG names a file, ./gemini-guard.toml
    exists, or a GEMINI_GUARD_* variable is set; otherwise nothing is assumed.
    """
    from_env = any(name.upper().startswith("GEMINI_GUARD_") for name in os.environ)
    if path is None and not from_env and not Path("gemini-guard.toml").is_file():
        return {}
    config = load_cli_config(path)
    project = config.projects[0]
    return {
        "models": config.models,
        "store": config.store,
        "tier": project.tier or config.tier,
        "base_url": config.base_url,
        "key_env": project.api_key_env,
    }


@main.command("doctor", cls=GuardCommand)
@models_option(
    "A model your app uses (repeatable, or a,b,c); checked against the models list and probed."
)
@click.option(
    "--base-url",
    metavar="URL",
    help=f"API base URL (default: GOOGLE_GEMINI_BASE_URL, else {DEFAULT_BASE_URL}).",
)
@config_option(
    "gemini-guard.toml (default: GEMINI_GUARD_CONFIG or ./gemini-guard.toml): "
    "its models, store, tier, base_url and key variable are checked."
)
@json_option
@click.option(
    "--status-url",
    metavar="URL",
    help=f"The service status page to check (default: {DEFAULT_STATUS_URL}; "
    f"on Vertex AI, {VERTEX_STATUS_URL}).",
)
@click.option("--store", metavar="URL", help="State store: memory://, sqlite:///path, redis://…")
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="auto",
    show_default=True,
    help="The tier your configuration assumes; compared with the quota ids the API reports "
    "(auto: the configuration's, else none).",
)
@click.option(
    "--isolation-model",
    default=ISOLATION_MODEL,
    show_default=True,
    help="The stable model the isolation test calls.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds allowed for each network step.",
)
@click.option("--no-probe", is_flag=True, help="Do not send a request to each configured model.")
@click.option(
    "--vertex/--no-vertex",
    default=None,
    help="Check Vertex AI (credentials, project, location) instead of an API key "
    "(default: when GOOGLE_GENAI_USE_VERTEXAI is true).",
)
@click.option(
    "--project",
    metavar="ID",
    help="Vertex AI: the Google Cloud project (default: GOOGLE_CLOUD_PROJECT).",
)
@click.option(
    "--location",
    metavar="LOC",
    help="Vertex AI: the location, global or a region (default: GOOGLE_CLOUD_LOCATION).",
)
def doctor_command(
    models: tuple[str, ...],
    base_url: str | None,
    config_path: Path | None,
    as_json: bool,
    status_url: str | None,
    store: str | None,
    tier: str,
    isolation_model: str,
    timeout: float,
    no_probe: bool,
    vertex: bool | None,
    project: str | None,
    location: str | None,
) -> None:
    """Check that this machine, key and project can call Gemini, and say how to fix what can't.

    Exits 1 when a check failed (warnings do not count); the JSON's "failed" says how many.
    """
    language = current_lang()
    configured = _configuration(config_path)
    on_vertex = wants_vertex(os.environ) if vertex is None else vertex
    if on_vertex:
        where = location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"
        default_url = os.environ.get(VERTEX_BASE_URL_ENV) or vertex_base_url(where)
    else:
        default_url = os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
    options = DoctorOptions(
        base_url=base_url or configured.get("base_url") or default_url,
        models=split_models(models) or tuple(dict.fromkeys(configured.get("models", ()))),
        isolation_model=isolation_model,
        status_url=status_url or (VERTEX_STATUS_URL if on_vertex else DEFAULT_STATUS_URL),
        store=store or configured.get("store"),
        tier=(tier if tier != "auto" else None) or configured.get("tier"),
        timeout=timeout,
        probe_models=not no_probe,
        key_env=configured.get("key_env"),
        vertex=on_vertex,
        project=project,
        location=location,
    )
    results = run_doctor(options, env=os.environ, clock=SystemClock())
    if as_json:
        payload = {
            "failed": failures(results),
            "checks": [r.to_dict(language) for r in results],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        render(results, language, Console(highlight=False))
    raise SystemExit(EXIT_PROBLEM if failures(results) else EXIT_OK)
