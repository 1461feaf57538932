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
from gemini_guard.clock import Clock, SystemClock
from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.pacific import next_reset
from gemini_guard.quota.limits import LimitPolicy
from gemini_guard.quota.stores import KeyUsage, QuotaKey, open_store
from gemini_guard.quota.stores.sqlite import SQLiteStore
from gemini_guard.sqlite_file import path_from_url
from gemini_guard.tiers import Limits

__all__ = [
    "DEFAULT_STORE",
    "CacheReport",
    "LedgerReport",
    "cache_report",
    "quota_command",
    "quota_report",
]

DEFAULT_STORE = "sqlite:///~/.cache/gemini-guard/state.db"
_TIERS = ("auto", "free", "tier1", "tier2", "tier3")


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

    if urlsplit(url).scheme.lower() == "memory":
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
    if urlsplit(url).scheme.lower() != "sqlite":
        return None
    path = path_from_url(url, option="cache") if cache else SQLiteStore.from_url_path(url)
    return None if path.exists() else path


def _of(used: int, limit: int | None) -> str:
    if limit is None:
        return f"{used:,}"
    return f"{used:,} / {limit:,}"


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
        title=f"Quota usage in {store_url} (limits: {tier})",
        caption=(
            "no limits are known with --tier auto: pass --tier free|tier1|tier2|tier3"
            if tier == "auto"
            else None
        ),
    )
    for header in (
        "project",
        "model",
        "requests/min",
        "tokens/min",
        "requests today",
        "tokens today",
        "next slot in",
        "day resets in",
    ):
        table.add_column(header, justify="left" if header in {"project", "model"} else "right")
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


def _without_password(url: str) -> str:
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
    table = Table(title=f"Response cache in {_without_password(cache_url)}")
    headers = [
        "project",
        "hits",
        "misses",
        "hit ratio",
        "coalesced",
        "tokens saved",
        "dollars saved",
    ]
    if context:
        headers += ["context uses", "context tokens", "context $ saved"]
    for header in headers:
        table.add_column(header, justify="left" if header == "project" else "right")
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


@main.command("quota")
@click.option(
    "--store",
    "store_url",
    default=DEFAULT_STORE,
    show_default=True,
    envvar="GEMINI_GUARD_STORE",
    help="The quota store to read: sqlite:///path, redis://host:port/db.",
)
@click.option(
    "--tier",
    type=click.Choice(_TIERS),
    default="auto",
    show_default=True,
    help="Whose limits to compare with (auto: none known up front).",
)
@click.option(
    "--cache",
    "cache_url",
    default=None,
    envvar="GEMINI_GUARD_CACHE",
    help="Also show what this shared response cache saved: sqlite:///path, redis://host:port/db.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def quota_command(store_url: str, tier: str, cache_url: str | None, as_json: bool) -> None:
    """Usage against limits per project and model, and the time to each reset."""
    try:
        missing = _missing_sqlite_file(store_url)
        reports = [] if missing is not None else quota_report(store_url, tier=tier)
        cached: list[CacheReport] | None = None
        missing_cache: Path | None = None
        if cache_url:
            missing_cache = _missing_sqlite_file(cache_url, cache=True)
            cached = [] if missing_cache is not None else cache_report(cache_url)
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        out = {
            "ledgers": [report.as_json() for report in reports],
            "cache": None if cached is None else [report.as_json() for report in cached],
        }
        click.echo(json.dumps(out, indent=2))
        return
    console = Console()
    if not reports:
        where = f"{missing} does not exist yet" if missing is not None else "it is empty"
        click.echo(f"No quota has been used in {store_url}: {where}.")
    else:
        console.print(_table(reports, tier=tier, store_url=store_url))
    if cached is None:
        return
    if not cached:
        where = (
            f"{missing_cache} does not exist yet" if missing_cache is not None else "no counts yet"
        )
        click.echo(f"No response-cache counts in {_without_password(str(cache_url))}: {where}.")
        return
    console.print(_cache_table(cached, cache_url=str(cache_url)))
