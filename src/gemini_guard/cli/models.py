"""`gemini-guard models`: the model table, and a local one refreshed from models.list.

Without options it prints the table gemini-guard works from: the shipped one with
the local table laid over it (see `gemini_guard.tiers`). `--refresh` asks the API's
models.list (one free request per page) for every model the key can use, and writes
their token limits and methods to the local table, so a model Google released after
this version of gemini-guard has its limits known to validation, `plan` and the
emulator. Rate limits and prices are not in models.list; they stay as shipped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gemini_guard.cli import main
from gemini_guard.cli._i18n import _, current_lang

if TYPE_CHECKING:
    from gemini_guard.tiers import ModelSpec
    from gemini_guard.validation import ModelInfo

__all__ = ["models_command", "render_override", "spec_json"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


def spec_json(spec: ModelSpec) -> dict[str, Any]:
    """One model of the table as JSON: limits, prices, tiers, methods, where it came from."""
    price = spec.price
    return {
        "name": spec.name,
        "input_token_limit": spec.input_token_limit,
        "output_token_limit": spec.output_token_limit,
        "methods": list(spec.methods),
        "status": spec.status,
        "checked": spec.checked,
        "source": spec.source,
        "price": None
        if price is None
        else {
            "input": price.input,
            "output": price.output,
            "cached_input": price.cached_input,
            "input_long": price.input_long,
            "output_long": price.output_long,
            "cached_input_long": price.cached_input_long,
            "batch_discount": price.batch_discount,
        },
        "tiers": {
            tier: {k: getattr(limits, k) for k in ("rpm", "tpm", "rpd", "tpd")}
            for tier, limits in spec.tiers.items()
        },
    }


def render_override(models: list[ModelInfo], *, checked: str, base_url: str) -> str:
    """The local table as TOML, in the shipped table's shape (token limits, methods)."""
    lines = [
        "# Written by `gemini-guard models --refresh` from the API's models.list",
        f"# ({base_url}); rewrite it the same way. Token limits and methods only: rate",
        "# limits and prices stay those of the shipped table.",
        f'checked = "{checked}"',
        "",
    ]
    for info in sorted(models, key=lambda m: m.name):
        if info.input_token_limit is None or info.output_token_limit is None:
            continue  # nothing to lay over the shipped table
        lines.append(f"[models.{json.dumps(info.name)}]")
        lines.append(f"input_token_limit = {info.input_token_limit}")
        lines.append(f"output_token_limit = {info.output_token_limit}")
        if info.supported_actions:
            lines.append(f"methods = {json.dumps(list(info.supported_actions))}")
        lines.append("")
    return "\n".join(lines)


def _price_text(spec: ModelSpec) -> str:
    price = spec.price
    if price is None:
        return "-"
    text = f"${price.input:g} / ${price.output:g}"
    if price.input_long is not None:
        text += f" (>200k: ${price.input_long:g} / ${price.output_long:g})"
    return text


def _limits_text(spec: ModelSpec, tier: str) -> str:
    limits = spec.tiers.get(tier)
    if limits is None:
        return "-"
    parts = [f"{limits.rpm:,} RPM" if limits.rpm is not None else None]
    parts.append(f"{limits.rpd:,} RPD" if limits.rpd is not None else None)
    return ", ".join(p for p in parts if p) or _("no limit")


def _refresh(api_key: str, base_url: str, timeout: float) -> list[ModelInfo]:
    from google import genai
    from google.genai import errors, types

    from gemini_guard.validation import ModelInfo

    options = types.HttpOptions(base_url=base_url, timeout=int(timeout * 1000))
    client = genai.Client(api_key=api_key, http_options=options)
    try:
        return [ModelInfo.from_api(model) for model in client.models.list()]
    except errors.APIError as exc:
        from gemini_guard.diagnosis import diagnose

        why = diagnose(exc).explain(current_lang()).splitlines()[0]
        raise click.ClickException(_("models.list failed: {why}", why=why)) from None
    finally:
        client.close()


@main.command("models")
@click.option(
    "--refresh",
    is_flag=True,
    help="Ask the API's models.list and write its token limits and methods to the local table.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where --refresh writes (default: GEMINI_GUARD_MODEL_TABLE, else "
    "~/.config/gemini-guard/models.toml).",
)
@click.option(
    "--base-url",
    metavar="URL",
    help=f"API base URL for --refresh (default: GOOGLE_GEMINI_BASE_URL, else {DEFAULT_BASE_URL}).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.05),
    default=30.0,
    show_default=True,
    help="Seconds allowed for each models.list request.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def models_command(
    refresh: bool, output: Path | None, base_url: str | None, timeout: float, as_json: bool
) -> None:
    """Show the model table: token limits, prices, rate limits, when they were checked.

    The key for --refresh comes from GOOGLE_API_KEY or GEMINI_API_KEY (as google-genai
    reads it); models.list costs no generation quota."""
    from gemini_guard.tiers import load_models, override_path

    if refresh:
        key = os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
        if not key:
            raise click.ClickException(
                _("--refresh needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)")
            )
        url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
        listed = _refresh(key, url, timeout)
        target = output or override_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        target.write_text(render_override(listed, checked=today, base_url=url), "utf-8")
        if output is not None and os.environ.get("GEMINI_GUARD_MODEL_TABLE") != str(output):
            click.echo(
                _(
                    "note: gemini-guard reads the local table from {path}; "
                    "set GEMINI_GUARD_MODEL_TABLE={output} to use this one",
                    path=override_path(),
                    output=output,
                ),
                err=True,
            )
        click.echo(
            _("wrote {n} models from models.list to {path}", n=len(listed), path=target),
            err=True,
        )
        if output is None:
            load_models.cache_clear()
    try:
        table = load_models()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"models": [spec_json(s) for s in table.values()]}, indent=2))
        return
    _print_table(list(table.values()))


def _print_table(specs: list[ModelSpec]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_("Gemini models (USD per 1M tokens; Batch API: 50% less)"))
    for column in ("model", "input", "output", "price in / out", "free", "tier 1", "checked"):
        table.add_column(_(column))
    for spec in specs:
        name = spec.name
        if spec.source == "models.list":
            name += " *"
        table.add_row(
            name,
            f"{spec.input_token_limit:,}",
            f"{spec.output_token_limit:,}",
            _price_text(spec),
            _limits_text(spec, "free"),
            _limits_text(spec, "tier1"),
            spec.checked or "-",
        )
    console = Console(highlight=False)
    console.print(table)
    if any(s.source == "models.list" for s in specs):
        console.print(_("* token limits from the local table (models.list)"))
    console.print(
        _(
            "-: not published. A model not listed works too: the Guard learns its limits "
            "from 429s, and `plan` says what it cannot estimate."
        )
    )
