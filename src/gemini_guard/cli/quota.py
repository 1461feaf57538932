"""`gemini-guard quota`: what each project and model has used, against its limits.

Reads the shared quota store (the one the Guard paces with) and shows, per
(project, model): requests and input tokens in the current sliding minute,
requests and tokens today (the Pacific day), the limits of the chosen tier, when
the minute window next frees a slot, and when the day resets (the next midnight
America/Los_Angeles).

With `--cache URL` (or `$GEMINI_GUARD_CACHE`), also what the response cache saved
per project, from the counters the Guards write to that shared cache store: hits,
misses, hit ratio, coalesced calls, tokens and dollars saved, and the context-cache
figures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.table import Table

from gemini_guard.cache.stats import CacheStats
from gemini_guard.cli import main
from gemini_guard.cli._common import (
    DEFAULT_STATE_STORE,
    TIERS,
    GuardCommand,
    config_option,
    fail,
    json_option,
    load_cli_config,
)
from gemini_guard.cli._i18n import _
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.pacific import next_reset
from gemini_guard.quota.limits import LimitPolicy
from gemini_guard.quota.stores import KeyUsage, QuotaKey, open_store
from gemini_guard.stores.url import parse_store_url
from gemini_guard.tiers import Limits

__all__ = [
    "DEFAULT_STORE",
    "CacheReport",
    "LedgerReport",
    "cache_report",
    "quota_command",
    "quota_report",
]

DEFAULT_STORE = DEFAULT_STATE_STORE


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """One (project, model): its usage now, its limits, and when quota returns."""

    project: str
    model: str
    usage: KeyUsage
    limits: Limits
    now: float
    day_resets_at: float

    @property
    def window_frees_in(self) -> float | None:
        """Seconds until the oldest slot of the window leaves it (None: window empty)."""
        if self.usage.next_free is None:
            return None
        return max(0.0, self.usage.next_free - self.now)

    @property
    def day_resets_in(self) -> float:
        return max(0.0, self.day_resets_at - self.now)

    def as_json(self) -> dict[str, object]:
        usage, limits = self.usage, self.limits
        return {
            "project": self.project,
            "model": self.model,
            "minute": {
                "requests": usage.requests,
                "requests_limit": limits.rpm,
                "tokens": usage.tokens,
                "tokens_limit": limits.tpm,
                "ahead": usage.ahead,
                "frees_in_s": _round(self.window_frees_in),
            },
            "day": {
                "requests": usage.day_requests,
                "requests_limit": limits.rpd,
                "tokens": usage.day_tokens,
                "tokens_limit": limits.tpd,
                "spent": usage.day_spent,
                "resets_in_s": _round(self.day_resets_in),
                "resets_at": self.day_resets_at,
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def quota_report(url: str, *, tier: str = "auto", clock: Clock | None = None) -> list[LedgerReport]:
    """Every ledger in the store at `url`, with the limits of `tier`."""
    policy = LimitPolicy.build(tier=tier)
    now = (clock or SystemClock()).time()
    store = open_store(url)
    try:
        reports = []
        for key in store.ledgers():
            reports.append(_report(key, store.usage(key, now=now), policy, now))
        return reports
    finally:
        store.close()


@dataclass(frozen=True, slots=True)
class CacheReport:
    """One project's response-cache counters, summed over every process that wrote them."""

    project: str
    stats: CacheStats

    def as_json(self) -> dict[str, object]:
        return {"project": self.project, **self.stats.to_dict()}


def cache_report(url: str) -> list[CacheReport]:
    """Every project's cache counters in the shared cache store at `url`."""
    from gemini_guard.cache.stores import open_cache_store

    if parse_store_url(url, option="cache").kind == "memory":
        raise ConfigError(
            f"--cache {url!r}: a memory:// cache lives and dies with one process; "
            "pass the sqlite:/// or redis:// URL the Guards use"
        )
    store = open_cache_store(url)
    try:
        stats = store.read_stats()
    finally:
        store.close()
    return [
        CacheReport(project, CacheStats.from_counts(stats[project])) for project in sorted(stats)
    ]


def _report(key: QuotaKey, usage: KeyUsage, policy: LimitPolicy, now: float) -> LedgerReport:
    return LedgerReport(
        project=key.project,
        model=key.model,
        usage=usage,
        limits=policy.configured(key.project, key.model),
        now=now,
        day_resets_at=next_reset(now),
    )


def _missing_sqlite_file(url: str, *, cache: bool = False) -> Path | None:
    """The file of a sqlite:// URL when it does not exist yet (reading creates none)."""
    path = parse_store_url(url, option="cache" if cache else "store").path
    return None if path is None or path.exists() else path


def _of(used: int, limit: int | None) -> str:
    if limit is None:
        return f"{used:,}"
    return f"{used:,} / {_compact(limit)}"


def _compact(number: int) -> str:
    """`250k`, `1M`, `1.5M`: a limit short enough for an 80-column table."""
    for size, scale, suffix in (
        (1_000_000_000, 1_000_000_000, "G"),
        (1_000_000, 1_000_000, "M"),
        (10_000, 1_000, "k"),
    ):
        if number >= size:
            return f"{number / scale:.4g}{suffix}"
    return f"{number:,}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _table(reports: list[LedgerReport], *, tier: str, store_url: str) -> Table:
    table = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
        padding=(0, 1, 0, 1),
        collapse_padding=True,
        title=_("Quota usage in {store} (limits: {tier})", store=store_url, tier=tier),
        caption=(
            _("no limits are known with --tier auto: pass --tier free|tier1|tier2|tier3")
            if tier == "auto"
            else None
        ),
    )
    # Two-line headers and no vertical rules: eight columns fit 80 terminal columns.
    headers = (
        _("project"),
        _("model"),
        _("requests\nper min"),
        _("tokens\nper min"),
        _("requests\ntoday"),
        _("tokens\ntoday"),
        _("next\nslot in"),
        _("day\nresets in"),
    )
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index < 2 else "right", no_wrap=index == 1)
    for report in reports:
        usage, limits = report.usage, report.limits
        table.add_row(
            report.project,
            report.model,
            _of(usage.requests, limits.rpm),
            _of(usage.tokens, limits.tpm),
            _of(usage.day_requests, limits.rpd) + (" (spent)" if usage.day_spent else ""),
            _of(usage.day_tokens, limits.tpd),
            _duration(report.window_frees_in),
            _duration(report.day_resets_in),
        )
    return table


def without_password(url: str) -> str:
    """`url` fit to print: a password in it becomes ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _ratio(value: float) -> str:
    return f"{value:.0%}"


def _cache_table(reports: list[CacheReport], *, cache_url: str) -> Table:
    context = any(r.stats.context_uses or r.stats.context_created for r in reports)
    table = Table(title=_("Response cache in {url}", url=without_password(cache_url)))
    headers = [
        _("project"),
        _("hits"),
        _("misses"),
        _("hit ratio"),
        _("coalesced"),
        _("tokens saved"),
        _("dollars saved"),
    ]
    if context:
        headers += [_("context uses"), _("context tokens"), _("context $ saved")]
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right", overflow="fold")
    for report in reports:
        stats = report.stats
        row = [
            report.project,
            f"{stats.hits:,}",
            f"{stats.misses:,}",
            _ratio(stats.hit_ratio),
            f"{stats.coalesced:,}",
            f"{stats.tokens_saved:,}",
            f"${stats.dollars_saved:,.4f}",
        ]
        if context:
            row += [
                f"{stats.context_uses:,}",
                f"{stats.context_tokens:,}",
                f"${stats.context_dollars_saved:,.4f}",
            ]
        table.add_row(*row)
    return table


@main.command("quota", cls=GuardCommand)
@click.option(
    "--store",
    "store_url",
    default=None,
    envvar="GEMINI_GUARD_STORE",
    metavar="URL",
    help="The quota store to read: sqlite:///path, redis://host:port/db (default: "
    "GEMINI_GUARD_STORE, else the config's store, else "
    "sqlite:///~/.cache/gemini-guard/state.db).",
)
@config_option("A gemini-guard.toml: its store and tier (the ones your Guards use).")
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="auto",
    show_default=True,
    help="Whose limits to compare with (auto: the config's tier; none known up front).",
)
@click.option(
    "--cache",
    "cache_url",
    default=None,
    envvar="GEMINI_GUARD_CACHE",
    metavar="URL",
    help="Also show what this shared response cache saved: sqlite:///path, redis://host:port/db.",
)
@json_option
def quota_command(
    store_url: str | None,
    config_path: Path | None,
    tier: str,
    cache_url: str | None,
    as_json: bool,
) -> None:
    """Usage against limits per project and model, and the time to each reset.

    It reads one store and names it: the Guards and `batch` share their ledgers there
    when they are configured with the same store (store = ... or GEMINI_GUARD_STORE)."""
    config = load_cli_config(config_path) if config_path is not None else None
    if store_url is None:
        configured = config.store if config is not None else "memory://"
        store_url = configured if not configured.startswith("memory:") else DEFAULT_STORE
    if store_url.startswith("memory:"):
        fail(
            _(
                "--store memory:// lives and dies with one process: pass the sqlite:/// or "
                "redis:// URL your Guards use"
            )
        )
    if tier == "auto" and config is not None and config.tier != "auto":
        tier = config.tier
    try:
        missing = _missing_sqlite_file(store_url)
        reports = [] if missing is not None else quota_report(store_url, tier=tier)
        cached: list[CacheReport] | None = None
        missing_cache: Path | None = None
        if cache_url:
            missing_cache = _missing_sqlite_file(cache_url, cache=True)
            cached = [] if missing_cache is not None else cache_report(cache_url)
    except (ConfigError, StoreError) as exc:
        fail(str(exc))
    shown = without_password(store_url)
    if as_json:
        out = {
            "store": shown,
            "tier": tier,
            "ledgers": [report.as_json() for report in reports],
            "cache": None if cached is None else [report.as_json() for report in cached],
        }
        click.echo(json.dumps(out, indent=2))
        return
    console = Console()
    if not reports:
        where = (
            _("{path} does not exist yet", path=missing)
            if missing is not None
            else _("it is empty")
        )
        click.echo(_("No quota has been used in {store}: {where}.", store=shown, where=where))
    else:
        console.print(_table(reports, tier=tier, store_url=shown))
    if cached is None:
        return
    if not cached:
        where = (
            _("{path} does not exist yet", path=missing_cache)
            if missing_cache is not None
            else _("no counts yet")
        )
        click.echo(
            _(
                "No response-cache counts in {url}: {where}.",
                url=without_password(str(cache_url)),
                where=where,
            )
        )
        return
    console.print(_cache_table(cached, cache_url=str(cache_url)))
