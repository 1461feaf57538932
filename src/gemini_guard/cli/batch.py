"""`gemini-guard batch INPUT.jsonl -o OUTPUT.jsonl`: a resumable run paced to the quota.

The key and base URL come from the environment the SDK reads (GEMINI_API_KEY or
GOOGLE_API_KEY, GOOGLE_GEMINI_BASE_URL), or from `--config`. `--emulate SCENARIO`
runs against the embedded emulator instead (no key, no network): a rehearsal.
Running the same command again resumes; Ctrl-C stops gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gemini_guard.cli import main
from gemini_guard.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEM,
    TIERS,
    GuardCommand,
    check_writable,
    config_option,
    effective_time_scale,
    fail,
    json_option,
    load_cli_config,
    models_option,
    split_models,
    time_scale_option,
)
from gemini_guard.cli._i18n import _, current_lang
from gemini_guard.cli._scenarios import complete_scenario as _complete_scenario

if TYPE_CHECKING:
    from gemini_guard.batch.job import JobSummary
    from gemini_guard.clock import Clock

__all__ = ["batch"]

EMULATOR_KEY = "emulator-key-not-a-secret"


def _chain(models: tuple[str, ...], configured: tuple[str, ...]) -> tuple[str, ...]:
    from gemini_guard.batch.runner import DEFAULT_MODEL

    if models:
        chain = split_models(models)
        if not chain:
            raise click.BadParameter(
                "give a model name, e.g. --model gemini-2.5-flash", param_hint="--model"
            )
        return chain
    return configured or (DEFAULT_MODEL,)


def _concurrency(value: str, limits: Any) -> int:
    from gemini_guard.batch.planner import auto_concurrency

    if value == "auto":
        return auto_concurrency(limits)
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(
            f"{value!r}: use 'auto' or a whole number >= 1", param_hint="--concurrency"
        )
    return number


def _scenario(name: str) -> Any:
    from gemini_guard.cli._scenarios import resolve_scenario

    return resolve_scenario(name)


def _client(base_url: str | None, key: str | None) -> Any:
    from google import genai
    from google.genai import types

    if key is None:
        key = os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
    if not key:
        raise click.UsageError(
            "no API key: export GEMINI_API_KEY (or GOOGLE_API_KEY), or rehearse offline "
            "with --emulate bad-day"
        )
    http = types.HttpOptions(base_url=base_url) if base_url else None
    return genai.Client(api_key=key, http_options=http)


def summary_json(summary: JobSummary, exit_code: int) -> dict[str, Any]:
    """The run as `batch --json` prints it on stdout (schema in docs/cli.md)."""
    files, r = summary.files, summary.repair
    return {
        "total": summary.total,
        "done": summary.done,
        "failed": summary.failed,
        "remaining": summary.remaining,
        "skipped": summary.skipped,
        "rejected_lines": summary.problems,
        "interrupted": summary.interrupted,
        "served_by": dict(sorted(summary.models.items())),
        "failures": dict(sorted(summary.categories.items())),
        "repair": {
            "appended": r.appended,
            "torn_bytes": r.torn_bytes,
            "dropped": r.dropped,
            "adopted": r.adopted,
        },
        "files": {
            "output": str(files.output),
            "journal": str(files.journal),
            "errors": str(files.errors),
        },
        "exit_code": exit_code,
    }


def _print_summary(summary: JobSummary, *, err: bool = False) -> None:
    files = summary.files
    lines = [
        "",
        _(
            "{done} done, {failed} failed, {left} left of {total} requests",
            done=summary.done,
            failed=summary.failed,
            left=summary.remaining,
            total=summary.total,
        )
        + (_(" ({n} already final before this run)", n=summary.skipped) if summary.skipped else ""),
    ]
    if summary.models:
        served = ", ".join(f"{m} {n}" for m, n in sorted(summary.models.items()))
        lines.append(_("served by: {models}", models=served))
    if summary.categories:
        why = ", ".join(f"{c} {n}" for c, n in sorted(summary.categories.items()))
        lines.append(_('failures: {why} (details in the output\'s "error" field)', why=why))
    if summary.problems:
        lines.append(
            _("{n} input line(s) rejected: see {path}", n=summary.problems, path=files.errors)
        )
    if summary.repair.changed:
        r = summary.repair
        lines.append(
            _(
                "output repaired from the journal: {appended} line(s) restored, "
                "{torn} torn byte(s) cut, {dropped} dropped, {adopted} adopted",
                appended=r.appended,
                torn=r.torn_bytes,
                dropped=r.dropped,
                adopted=r.adopted,
            )
        )
    lines.append(
        _("output: {output}   journal: {journal}", output=files.output, journal=files.journal)
    )
    for line in lines:
        click.echo(line, err=err)


def _resume_hint() -> str:
    return shlex.join(["gemini-guard", *sys.argv[1:]])


@main.command(cls=GuardCommand)
@click.argument(
    "input_path",
    metavar="INPUT.jsonl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output JSONL (its journal and errors file go next to it).",
)
@config_option("A gemini-guard.toml (models, tier, retry, telemetry...).")
@models_option("Model for requests that name none; repeat it or give a,b,c for a fallback chain.")
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="auto",
    show_default=True,
    help="Quota tier to pace to (auto: the config's, else paced as free and learned from 429s).",
)
@click.option(
    "--concurrency",
    default="auto",
    show_default=True,
    help="Requests in flight: auto (from the tier's RPM) or N.",
)
@click.option("--retry-failed", is_flag=True, help="Run again the requests that failed before.")
@click.option(
    "--mode",
    type=click.Choice(["guard", "batch-api"]),
    default="guard",
    show_default=True,
    help="guard: paced requests; batch-api: the Gemini Batch API (50% cheaper, slower).",
)
@click.option(
    "--batch-api-deadline",
    "deadline_text",
    default="24h",
    show_default=True,
    metavar="DURATION",
    help="With --mode batch-api: a job still pending or running this long after it was "
    "submitted is cancelled, and what it did not answer runs as paced direct calls "
    "(e.g. 6h, 90m, 2d; none: wait until the job ends).",
)
@click.option(
    "--emulate",
    "scenario",
    shell_complete=_complete_scenario,
    default=None,
    metavar="SCENARIO",
    help="Run against the embedded emulator (bad-day, free-tier, overload, ...; "
    "see emulate --list-scenarios).",
)
@time_scale_option(
    None, "Clock speed-up (emulated seconds per real second); default 60 with --emulate."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics of the run on 127.0.0.1:PORT/metrics.",
)
@json_option
def batch(
    input_path: Path,
    output: Path,
    config_path: Path | None,
    models: tuple[str, ...],
    tier: str,
    concurrency: str,
    retry_failed: bool,
    mode: str,
    deadline_text: str,
    scenario: str | None,
    time_scale: float | None,
    metrics_port: int | None,
    as_json: bool,
) -> None:
    """Run every request of INPUT.jsonl, paced to the quota; resumable and crash-safe.

    Each input line: {"id": ..., "prompt": "..."} or {"id": ..., "contents": [...],
    "config": {...}, "model": "..."}. Each output line: id, ok, text, usage, model,
    attempts, and for a failure its error (category, http_status, message).
    Exits 1 when a request failed, 130 when stopped before the end (run it again to resume).
    """
    from gemini_guard.clock import ScaledClock, SystemClock
    from gemini_guard.errors import GuardError

    time_scale = effective_time_scale(time_scale)
    deadline = _deadline(deadline_text)
    check_writable(output, "-o/--output")
    config = load_cli_config(config_path)
    chain = _chain(models, config.models)
    tier_name = tier if tier != "auto" else config.tier
    clock: Clock = SystemClock()
    if scenario is not None or time_scale is not None:
        clock = ScaledClock(time_scale or 60.0)
    # The Guard logs retries and breaker changes; the progress display tells the story.
    logging.getLogger("gemini_guard").setLevel(logging.ERROR)
    with ExitStack() as stack:
        base_url, key = config.base_url, None
        if scenario is not None:
            from gemini_guard.cli._scenarios import check_scenario_name
            from gemini_guard.emulator import serve
            from gemini_guard.errors import ScenarioError

            check_scenario_name(scenario, "--emulate")
            try:
                server = stack.enter_context(serve(_scenario(scenario), clock=clock))
            except (ScenarioError, FileNotFoundError, KeyError, ValueError) as exc:
                raise click.BadParameter(str(exc), param_hint="--emulate") from None
            base_url, key = server.base_url, EMULATOR_KEY
            click.echo(
                _(
                    "emulator: {scenario} on {url}, clock x{x}",
                    scenario=scenario,
                    url=server.base_url,
                    x=f"{clock_factor(clock):g}",
                ),
                err=True,
            )
        client = _client(base_url, key)
        try:
            if mode == "batch-api":
                code, summary = _run_batch_api(
                    client,
                    clock,
                    input_path,
                    output,
                    chain[0],
                    retry_failed,
                    deadline=deadline,
                    direct=_direct_runner(config, client, clock, chain, tier_name, concurrency),
                )
            else:
                code, summary = _run_guard(
                    config,
                    client,
                    clock,
                    input_path,
                    output,
                    chain,
                    tier_name,
                    concurrency,
                    retry_failed,
                    metrics=_metrics(metrics_port),
                )
        except GuardError as exc:
            # Another run holds the output, or a file could not be written or read:
            # the message says which file and how to go on.
            raise click.ClickException(str(exc)) from None
    if as_json and summary is not None:
        click.echo(json.dumps(summary_json(summary, code), ensure_ascii=False, indent=2))
    sys.exit(code)


def _limits(model: str, tier: str) -> Any:
    from gemini_guard.tiers import Limits, model_spec

    spec = model_spec(model)
    if spec is not None and tier in spec.tiers:
        return spec.limits(tier)
    return Limits()


def _metrics(port: int | None) -> Any:
    """Prometheus metrics served on `port` for the run (False without a port)."""
    if port is None:
        return False
    from gemini_guard.telemetry.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics()
    server = metrics.serve(port)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    click.echo(_("metrics: {url}", url=url), err=True)
    return metrics


def _shown_store(url: str) -> str:
    from gemini_guard.cli.quota import without_password

    if url.startswith("memory:"):
        return _("memory:// (this run only)")
    return without_password(url)


def clock_factor(clock: Clock) -> float:
    return float(getattr(clock, "factor", 1.0))


def _batch_store(config: Any, clock: Clock) -> str:
    # The configured store (store = ... or GEMINI_GUARD_STORE) is shared with the app's
    # Guards and read by `gemini-guard quota`; an emulated run keeps its scaled-clock
    # ledger to itself so it never mixes with real usage.
    return str(config.store) if clock_factor(clock) == 1.0 else "memory://"


def _batch_guard(
    config: Any,
    client: Any,
    clock: Clock,
    chain: tuple[str, ...],
    tier_name: str,
    *,
    hooks: Any = (),
    metrics: Any = False,
) -> Any:
    """The Guard a batch's direct calls run through: paced to the tier, batch retries."""
    from gemini_guard.config import RetrySection
    from gemini_guard.guard import guard_from_config
    from gemini_guard.policies import RetryPolicy
    from gemini_guard.quota import QuotaLimiter

    limiter = QuotaLimiter(store=_batch_store(config, clock), clock=clock, tier=tier_name)
    overrides: dict[str, Any] = {}
    if config.retry == RetrySection():
        overrides["retry"] = RetryPolicy.BATCH  # no caller waits on one item
    return guard_from_config(
        config,
        client=client,
        clock=clock,
        quota=limiter,
        hooks=list(hooks),
        metrics=metrics,
        models=chain,
        tier=tier_name if tier_name != "auto" else "free",
        log=False,
        **overrides,
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _deadline(text: str) -> float | None:
    """--batch-api-deadline in seconds (None: no deadline)."""
    if text.strip().lower() == "none":
        return None
    match = _DURATION.match(text.lower())
    seconds = float(match[1]) * _UNIT[match[2]] if match else 0.0
    if not seconds > 0:
        raise click.BadParameter(
            f"{text!r}: give a duration such as 24h, 90m, 45s or 2d, or none",
            param_hint="--batch-api-deadline",
        )
    return seconds


def _direct_runner(
    config: Any,
    client: Any,
    clock: Clock,
    chain: tuple[str, ...],
    tier_name: str,
    concurrency: str,
) -> Any:
    """What answers a Batch API job's leftovers: paced direct calls through a Guard,
    built only when a job misses its deadline."""
    from gemini_guard.batch.planner import chain_limits
    from gemini_guard.batch.runner import run_batch

    def direct(requests: Any) -> Any:
        paced_as = tier_name if tier_name != "auto" else "free"
        workers = _concurrency(concurrency, chain_limits(_limits(m, paced_as) for m in chain))
        guard = _batch_guard(config, client, clock, chain, tier_name)
        try:
            yield from run_batch(guard, requests, model=chain[0], concurrency=workers)
        finally:
            guard.close()

    return direct


def _run_guard(
    config: Any,
    client: Any,
    clock: Clock,
    input_path: Path,
    output: Path,
    chain: tuple[str, ...],
    tier_name: str,
    concurrency_option: str,
    retry_failed: bool,
    metrics: Any = False,
) -> tuple[int, JobSummary | None]:
    from gemini_guard.batch.job import JobFiles, prepare
    from gemini_guard.batch.journal import Journal
    from gemini_guard.batch.planner import chain_limits
    from gemini_guard.batch.progress import BatchProgress
    from gemini_guard.tokens import estimate_tokens

    # Concurrency and the ETA cover the whole chain: a fallback model's quota is usable too.
    # Under tier=auto the Guard paces as the free tier until 429s teach it otherwise, so
    # the ETA starts from the free tier's limits too (not from "no limit": 0 s).
    paced_as = tier_name if tier_name != "auto" else "free"
    limits = chain_limits(_limits(m, paced_as) for m in chain)
    workers = _concurrency(concurrency_option, limits)
    files = JobFiles.of(input_path, output)
    with Journal(files.journal) as journal:
        try:
            prepared = prepare(files, journal, retry_failed=retry_failed)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        if prepared.problems:
            click.echo(
                _(
                    "{n} input line(s) rejected (first: line {line}: {why}); listed in {path}",
                    n=len(prepared.problems),
                    line=prepared.problems[0].line,
                    why=prepared.problems[0].explain(current_lang()),
                    path=files.errors,
                ),
                err=True,
            )
        tokens = [estimate_tokens(r.contents) for r in prepared.pending[:1000]]
        live = sys.stderr.isatty()
        progress = BatchProgress(
            total=prepared.total,
            clock=clock,
            limits=limits,
            tokens_per_request=sum(tokens) / len(tokens) if tokens else 0.0,
            done=prepared.already_done,
            failed=prepared.already_failed,
            live=live,
            stream=None if live else sys.stderr,
            words=_,
        )
        store = _batch_store(config, clock)
        guard = _batch_guard(
            config, client, clock, chain, tier_name, hooks=[progress], metrics=metrics
        )
        click.echo(
            _(
                "batch: {pending} to run of {total} ({done} done, {failed} failed before); "
                "model {chain}, tier {tier}, concurrency {workers}, quota state {store}",
                pending=len(prepared.pending),
                total=prepared.total,
                done=prepared.already_done,
                failed=prepared.already_failed,
                chain=" -> ".join(chain),
                tier=tier_name,
                workers=workers,
                store=_shown_store(store),
            )
            + (
                _(
                    "; times below (rate, ETA) are emulated: clock x{x}",
                    x=f"{clock_factor(clock):g}",
                )
                if clock_factor(clock) != 1.0
                else ""
            ),
            err=True,
        )
        summary = asyncio.run(_drive(guard, prepared, journal, chain[0], workers, progress))
    _print_summary(summary, err=True)
    if summary.interrupted or summary.remaining:
        click.echo(_("stopped; resume with the same command:") + f"\n  {_resume_hint()}", err=True)
        return EXIT_INTERRUPTED, summary
    if summary.failed:
        click.echo(_("some requests failed; run again with --retry-failed to retry them"), err=True)
        return EXIT_PROBLEM, summary
    return EXIT_OK, summary


async def _drive(
    guard: Any, prepared: Any, journal: Any, model: str, workers: int, progress: Any
) -> JobSummary:
    from gemini_guard.batch.job import run_job

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            stop.set()
            click.echo(
                "\n"
                + _(
                    "stopping: no new requests; finishing those in flight "
                    "(Ctrl-C again to abandon them; they will run on resume)"
                ),
                err=True,
            )
        elif task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)
    progress.start()
    job = asyncio.ensure_future(
        run_job(
            guard, prepared, journal, model=model, concurrency=workers, observer=progress, stop=stop
        )
    )
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        # Second Ctrl-C: abandon what is in flight; everything final is journaled.
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        stop.set()
        return _after_abandon(prepared, journal)
    finally:
        progress.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _after_abandon(prepared: Any, journal: Any) -> JobSummary:
    from gemini_guard.batch.job import JobSummary

    states = journal.states()
    ids = {r.id for r in prepared.pending} | set()
    done = prepared.already_done + sum(1 for i in ids if states.get(i) == "done")
    failed = prepared.already_failed + sum(1 for i in ids if states.get(i) == "failed")
    return JobSummary(
        files=prepared.files,
        total=prepared.total,
        done=done,
        failed=failed,
        skipped=prepared.already_done + prepared.already_failed,
        problems=len(prepared.problems),
        interrupted=True,
        repair=prepared.repair,
    )


def _run_batch_api(
    client: Any,
    clock: Clock,
    input_path: Path,
    output: Path,
    model: str,
    retry_failed: bool,
    *,
    deadline: float | None,
    direct: Any,
) -> tuple[int, JobSummary | None]:
    from gemini_guard.batch.batch_api import run_batch_api
    from gemini_guard.batch.job import JobFiles, prepare
    from gemini_guard.batch.journal import Journal

    files = JobFiles.of(input_path, output)
    with Journal(files.journal) as journal:
        try:
            prepared = prepare(files, journal, retry_failed=retry_failed)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        try:
            summary = run_batch_api(
                client,
                prepared,
                journal,
                model=model,
                clock=clock,
                say=lambda text: click.echo(text, err=True),
                words=_,
                deadline=deadline,
                direct=direct,
            )
        except KeyboardInterrupt:
            click.echo(
                "\n"
                + _("stopped; the Batch API job keeps running. Resume with:")
                + f"\n  {_resume_hint()}",
                err=True,
            )
            return EXIT_INTERRUPTED, None
    _print_summary(summary, err=True)
    if summary.failed:
        return EXIT_PROBLEM, summary
    return EXIT_OK, summary
