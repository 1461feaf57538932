"""`gemini-guard plan INPUT.jsonl`: tokens, time and cost of a batch before running it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gemini_guard.cli import main
from gemini_guard.cli._common import (
    TIERS,
    GuardCommand,
    config_option,
    fail,
    json_option,
    load_cli_config,
    models_option,
    split_models,
)
from gemini_guard.cli._i18n import _, current_lang

if TYPE_CHECKING:
    from gemini_guard.batch.planner import Plan
    from gemini_guard.config import GuardConfig
    from gemini_guard.tiers import Limits, Prices

__all__ = ["describe_time", "plan", "price_override"]


def describe_time(seconds: float, binding: str, days: int) -> str:
    """`12.5 minutes (rpm binds)`, `10 quota days (rpd binds)`."""
    if seconds == math.inf:
        return _("never ({binding} is 0)", binding=binding)
    if binding == "rpd":
        return _("{days} quota days (rpd binds; the day resets at midnight Pacific)", days=days + 1)
    if seconds >= 3600:
        return _("{hours:.1f} hours ({binding} binds)", hours=seconds / 3600, binding=binding)
    return _("{minutes:.1f} minutes ({binding} binds)", minutes=seconds / 60, binding=binding)


@main.command(cls=GuardCommand)
@click.argument(
    "input_path",
    metavar="INPUT.jsonl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="auto",
    show_default=True,
    help="Whose limits to plan with (auto: the config's tier, else free).",
)
@models_option(
    "The model to plan for (default: the config's first, else gemini-2.5-flash); "
    "with a,b,c only the first is planned."
)
@click.option(
    "--output-tokens",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Output tokens assumed per request (thinking included), for the cost.",
)
@config_option('A gemini-guard.toml ([prices."MODEL"], models, tier).')
@json_option
def plan(
    input_path: Path,
    tier: str,
    models: tuple[str, ...],
    output_tokens: int,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Estimate tokens, time to finish under the tier's limits, and cost in USD.

    Prices come from the shipped table unless the config has a [prices."MODEL"]
    section (input, output, cached_input: USD per 1M tokens); limits likewise from
    [quota.limits."MODEL"]. A model the table does not know, or whose limits or prices
    Google does not publish, still gets its token estimate; the plan says what it
    cannot work out and how to supply it."""
    from gemini_guard.batch.planner import make_plan
    from gemini_guard.batch.reader import read_requests
    from gemini_guard.clock import SystemClock
    from gemini_guard.tiers import Limits, Prices, model_spec

    config = load_cli_config(config_path)
    chain = split_models(models) or tuple(config.models) or ("gemini-2.5-flash",)
    model = chain[0]
    if tier == "auto":
        tier = config.tier if config.tier != "auto" else "free"
    read = read_requests(input_path)
    spec = model_spec(model)
    price = price_override(config, model) or (spec.price if spec is not None else None)
    table = _limits_table(config, model, dict(spec.tiers) if spec is not None else {})
    knows_time = tier in table
    try:
        figures = make_plan(
            read.requests,
            model=model,
            tier=tier,
            output_tokens_per_request=output_tokens,
            start=SystemClock().time(),
            # Without a price or limits the figures that need them are not printed.
            price=price if price is not None else Prices(input=0, output=0, cached_input=0),
            limits=table if knows_time else {tier: Limits()},
        )
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        click.echo(
            json.dumps(
                plan_json(
                    figures,
                    read.problems,
                    model in config.prices,
                    priced=price is not None,
                    timed=knows_time,
                ),
                indent=2,
            )
        )
        return
    chosen = figures.chosen
    echo = click.echo
    echo(_("{n} requests on {model}, tier {tier}", n=figures.requests, model=model, tier=tier))
    if spec is None:
        echo(
            _(
                "note: {model} is not in the model table (`gemini-guard models` lists it); "
                "estimating what can be estimated without it",
                model=model,
            )
        )
    if read.problems:
        first = read.problems[0]
        echo(
            _(
                "({n} input line(s) rejected, not counted; first: line {line}: {message})",
                n=len(read.problems),
                line=first.line,
                message=first.explain(current_lang()),
            )
        )
    echo(
        _(
            "tokens: {input:,} input (estimated by script: about 1 per English word, 0.6 per "
            "Chinese character), {output:,} output (assumed {each} per request)",
            input=figures.input_tokens,
            output=figures.output_tokens,
            each=output_tokens,
        )
    )
    if knows_time:
        finish = chosen.finish
        echo(
            _(
                "time:   {time} at {limits}",
                time=describe_time(finish.seconds, finish.binding, finish.days),
                limits=_limits(chosen.limits),
            )
        )
    else:
        echo(
            _(
                "time:   unknown: no published limits for {model} on tier {tier}. The Guard "
                "paces it adaptively, learning the enforced limit from 429s; to estimate, give "
                'the limits in the config: [quota.limits."{model}"] rpm = ..., tpm = ..., '
                "rpd = ...",
                model=model,
                tier=tier,
            )
        )
    if price is not None:
        echo(
            _(
                "cost:   ${standard:,.4f} at standard prices, ${batch:,.4f} through the Batch "
                "API ({discount:.0%} less)  [input ${input}/1M, output ${output}/1M{source}]",
                standard=figures.standard_cost,
                batch=figures.batch_api_cost,
                discount=price.batch_discount,
                input=price.input,
                output=price.output,
                source=_(", from the config") if model in config.prices else "",
            )
        )
        if price.input_long is not None:
            echo(
                _(
                    "        prompts over 200k tokens cost more: input ${input}/1M, "
                    "output ${output}/1M",
                    input=price.input_long,
                    output=price.output_long,
                )
            )
    else:
        echo(
            _(
                "cost:   unknown: no published price for {model}; give it in the config: "
                '[prices."{model}"] input = ..., output = ... (USD per 1M tokens)',
                model=model,
            )
        )
    if not knows_time:
        return
    smallest = figures.smallest_tier_within_a_day
    if smallest is None:
        echo(_("no tier finishes within a day; split the work or use the Batch API"))
    else:
        best = next(p for p in figures.tiers if p.tier == smallest)
        echo(
            _(
                "smallest tier that finishes within a day: {tier} ({time})",
                tier=smallest,
                time=describe_time(best.finish.seconds, best.finish.binding, best.finish.days),
            )
        )


def _limits_table(config: GuardConfig, model: str, shipped: dict[str, Limits]) -> dict[str, Limits]:
    """The limits per tier for `model`: the shipped ones, with the config's
    [quota.limits."MODEL"] figures laid over every tier (they name no tier: they are
    what the user's project is allowed)."""
    from gemini_guard.tiers import TIERS, Limits

    figures = config.quota.limits.get(model)
    if not figures:
        return shipped
    out: dict[str, Limits] = {}
    for name in TIERS:
        base = shipped.get(name, Limits())
        values = {k: figures.get(k, getattr(base, k)) for k in ("rpm", "tpm", "rpd", "tpd")}
        out[name] = Limits(**values)
    return out


def plan_json(
    figures: Plan, problems: Any, from_config: bool, *, priced: bool = True, timed: bool = True
) -> dict[str, Any]:
    """The plan as `plan --json` prints it (schema in docs/cli.md). What the plan cannot
    work out (no published price: `priced` False; no limits: `timed` False) is null."""

    def tier_json(p: Any) -> dict[str, Any]:
        return {
            "tier": p.tier,
            "limits": {n: getattr(p.limits, n, None) for n in ("rpm", "tpm", "rpd")},
            "seconds": None if p.finish.seconds == math.inf else round(p.finish.seconds, 3),
            "binding": p.finish.binding,
            "days": p.finish.days,
            "within_a_day": p.within_a_day,
        }

    return {
        "model": figures.model,
        "tier": figures.chosen.tier,
        "requests": figures.requests,
        "rejected_lines": len(problems),
        "input_tokens": figures.input_tokens,
        "output_tokens": figures.output_tokens,
        "time": tier_json(figures.chosen) if timed else None,
        "cost_usd": None
        if not priced
        else {
            "standard": round(figures.standard_cost, 6),
            "batch_api": round(figures.batch_api_cost, 6),
            "price_per_1m": {
                "input": figures.price.input,
                "output": figures.price.output,
                "cached_input": figures.price.cached_input,
            },
            "prices_from_config": from_config,
        },
        "tiers": [tier_json(p) for p in figures.tiers] if timed else [],
        "smallest_tier_within_a_day": figures.smallest_tier_within_a_day if timed else None,
    }


def _limits(limits: object) -> str:
    parts = []
    for name in ("rpm", "tpm", "rpd"):
        value = getattr(limits, name, None)
        parts.append(f"{name.upper()} {value:,}" if value is not None else f"no {name.upper()}")
    return ", ".join(parts)


def price_override(config: GuardConfig, model: str) -> Prices | None:
    """The config's prices for `model`, or None for the shipped table's. A missing
    `cached_input` keeps the shipped figure (or the input price for an unknown model)."""
    from gemini_guard.tiers import Prices, model_spec

    section = config.prices.get(model)
    if section is None:
        return None
    cached = section.cached_input
    if cached is None:
        spec = model_spec(model)
        shipped = spec.price if spec is not None else None
        cached = shipped.cached_input if shipped is not None else section.input
    return Prices(input=section.input, output=section.output, cached_input=cached)
