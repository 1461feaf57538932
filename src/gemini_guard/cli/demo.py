"""`gemini-guard demo`: a bad day of Gemini, once with the guide's retry loop, once guarded.

The embedded emulator plays the December 2025 free-tier cut (the lowered limits from
the `dec-2025-cut` scenario, in force from the start) together with the 503 storm on
gemini-2.5-pro (the `overload` scenario's faults), on a ScaledClock so that a quarter
of an hour of quota passes in seconds. The same prompts go through:

- the troubleshooting guide's `call_gemini_with_retry`: 2**attempt + random jitter,
  at most 5 attempts, on 429 and 503 only, ignoring the delay the server names; one
  model (gemini-2.5-flash), as the guide's snippet has it;
- a `Guard` over the chain pro → flash → flash-lite with the `batch` retry preset
  (a 200-prompt job has no per-call deadline to keep) and quota pacing for the free
  tier (`tier="free"`: the limiter paces by the published table and learns the cut
  limits from the first 429s); `--config` builds it from a gemini-guard.toml instead.

No key, no network: the emulator listens on loopback only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import click
from google import genai
from google.genai import errors, types

from gemini_guard.cli import main
from gemini_guard.cli._common import (
    GuardCommand,
    config_option,
    effective_time_scale,
    json_option,
    load_cli_config,
    time_scale_option,
)
from gemini_guard.cli._i18n import _
from gemini_guard.cli._scenarios import bad_day_scenario
from gemini_guard.clock import Clock, ScaledClock, SystemClock
from gemini_guard.config import GuardConfig
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import CallFailed
from gemini_guard.policies import RetryPolicy
from gemini_guard.telemetry import AttemptFailed, AttemptStarted, Event, JsonlSink

__all__ = [
    "CallTally",
    "RunResult",
    "bad_day_scenario",
    "call_gemini_with_retry",
    "run_guard",
    "run_guide",
    "run_sdk_retry",
    "run_workers",
    "server_counts",
]

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
CHAIN = (PRO, FLASH, LITE)
DEMO_KEY = "demo-key-not-a-secret"


def theoretical_minimum(scenario: Scenario, models: tuple[str, ...], prompts: int) -> float:
    """Clock seconds the prompts need at best: every model's per-minute limit used to
    the full, minute after minute, until its per-day limit is spent (faults ignored)."""
    rpm: dict[str, int] = {}
    rpd: dict[str, int] = {}
    for change in scenario.limit_changes:
        if change.model in models:
            if change.rpm is not None:
                rpm[change.model] = change.rpm
            if change.rpd is not None:
                rpd[change.model] = change.rpd
    left, minutes = prompts, 0
    while left > 0:
        served = 0
        for model, per_minute in rpm.items():
            n = min(per_minute, rpd.get(model, per_minute), left - served)
            served += n
            if model in rpd:
                rpd[model] -= n
        if served == 0:
            return float("inf")  # the day's quota cannot serve them all
        left -= served
        minutes += 1
    # the last minute's requests go out at its start
    return 60.0 * (minutes - 1)


async def call_gemini_with_retry(
    client: genai.Client,
    prompt: str,
    *,
    clock: Clock,
    rng: random.Random,
    model: str = FLASH,
    max_retries: int = 5,
    on_attempt: Callable[[int | None], None] = lambda code: None,
) -> types.GenerateContentResponse:
    """The troubleshooting guide's loop, on the given clock: exponential backoff
    2**attempt plus up to a second of random jitter, at most `max_retries` attempts,
    retrying 429 and 503 only and ignoring the delay the server names."""
    for attempt in range(max_retries):
        try:
            response = await client.aio.models.generate_content(model=model, contents=prompt)
        except errors.APIError as exc:
            on_attempt(exc.code)
            if exc.code in (429, 503) and attempt < max_retries - 1:
                await clock.asleep(2**attempt + rng.random())
                continue
            raise
        on_attempt(200)
        return response
    raise AssertionError("unreachable: the last attempt returns or raises")


@dataclass(frozen=True, slots=True)
class RunResult:
    name: str
    prompts: int
    succeeded: int
    sent: int
    got_429: int
    got_5xx: int
    elapsed: float  # clock seconds
    minimum: float  # clock seconds, theoretical
    span: float = 0.0  # clock seconds from the first success to the last
    # One (clock seconds since the run started when the call began, the model that
    # answered it) per served call.
    served: tuple[tuple[float, str], ...] = ()
    started: float = 0.0  # the clock's monotonic() when the run began

    @property
    def lost(self) -> int:
        return self.prompts - self.succeeded

    def served_by(self, model: str, *, since: float = 0.0) -> tuple[int, int]:
        """(calls begun at or after `since` that `model` answered, all served calls
        begun then)."""
        later = [m for t, m in self.served if t >= since]
        return sum(1 for m in later if m == model), len(later)


class CallTally:
    """What a contender's calls came to, counted as they end."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent = self.got_429 = self.got_5xx = self.succeeded = 0
        self.first: float | None = None
        self.last: float | None = None
        self.started = clock.monotonic()
        self.served: list[tuple[float, str]] = []

    def begin(self) -> float:
        """Mark a call's start; pass the value to `success`."""
        return self.clock.monotonic() - self.started

    def success(self, began: float = 0.0, model: str | None = None) -> None:
        self.succeeded += 1
        now = self.clock.monotonic()
        self.first = now if self.first is None else self.first
        self.last = now
        if model is not None:
            self.served.append((began, model))

    @property
    def span(self) -> float:
        return 0.0 if self.first is None or self.last is None else self.last - self.first

    def status(self, code: int | None) -> None:
        self.sent += 1
        if code == 429:
            self.got_429 += 1
        elif code is not None and code >= 500:
            self.got_5xx += 1


async def run_workers(
    prompts: list[str],
    concurrency: int,
    one: Callable[[str], Awaitable[None]],
    *,
    clock: Clock | None = None,
    interval: float = 0.0,
) -> None:
    """Send `prompts` through `one`, `concurrency` at a time; with `interval` (clock
    seconds), prompt i arrives at i * interval, as traffic does, and waits for a free
    worker if all are busy."""
    if interval > 0 and clock is not None:
        workers = asyncio.Semaphore(concurrency)
        started = clock.monotonic()

        async def arrive(i: int, prompt: str) -> None:
            await clock.asleep(max(0.0, started + i * interval - clock.monotonic()))
            async with workers:
                await one(prompt)

        await asyncio.gather(*(arrive(i, p) for i, p in enumerate(prompts)))
        return
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)

    async def worker() -> None:
        while not queue.empty():
            prompt = queue.get_nowait()
            await one(prompt)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _client(server: EmulatorServer, **http: object) -> genai.Client:
    return genai.Client(
        api_key=DEMO_KEY,
        http_options=types.HttpOptions(base_url=server.base_url, **http),  # type: ignore[arg-type]
    )


async def run_guide(
    server: EmulatorServer,
    prompts: list[str],
    *,
    clock: Clock,
    concurrency: int,
    minimum: float,
    progress: Callable[[], None] = lambda: None,
    name: str = "guide's loop",
    model: str = FLASH,
    interval: float = 0.0,
) -> RunResult:
    client = _client(server)
    tally = CallTally(clock)
    rng = random.Random(1)
    started = clock.monotonic()

    async def one(prompt: str) -> None:
        began = tally.begin()
        try:
            await call_gemini_with_retry(
                client, prompt, clock=clock, rng=rng, model=model, on_attempt=tally.status
            )
            tally.success(began, model)
        except errors.APIError:
            pass
        progress()

    try:
        await run_workers(prompts, concurrency, one, clock=clock, interval=interval)
    finally:
        await client.aio.aclose()
        client.close()
    return RunResult(
        name,
        len(prompts),
        tally.succeeded,
        tally.sent,
        tally.got_429,
        tally.got_5xx,
        clock.monotonic() - started,
        minimum,
        tally.span,
        tuple(tally.served),
        tally.started,
    )


async def run_sdk_retry(
    server: EmulatorServer,
    prompts: list[str],
    *,
    clock: Clock,
    concurrency: int,
    minimum: float,
    progress: Callable[[], None] = lambda: None,
    model: str = FLASH,
    interval: float = 0.0,
) -> RunResult:
    """google-genai's own HttpRetryOptions (its defaults: 5 attempts, 1 s doubling to
    60 s, on 408/429/5xx). It sleeps real time, so its delays are divided by the
    clock's factor to run on the same scale as the others."""
    factor = float(getattr(clock, "factor", 1.0))
    retry = types.HttpRetryOptions(initial_delay=1.0 / factor, max_delay=60.0 / factor)
    client = _client(server, retry_options=retry)
    tally = CallTally(clock)
    started = clock.monotonic()

    async def one(prompt: str) -> None:
        began = tally.begin()
        try:
            await client.aio.models.generate_content(model=model, contents=prompt)
            tally.success(began, model)
        except errors.APIError:
            pass
        progress()

    before = server_counts(server, model)
    try:
        await run_workers(prompts, concurrency, one, clock=clock, interval=interval)
    finally:
        await client.aio.aclose()
        client.close()
    after = server_counts(server, model)
    sent, got_429, got_5xx = (a - b for a, b in zip(after, before, strict=True))
    return RunResult(
        "SDK retry",
        len(prompts),
        tally.succeeded,
        sent,
        got_429,
        got_5xx,
        clock.monotonic() - started,
        minimum,
        tally.span,
        tuple(tally.served),
        tally.started,
    )


_QUOTA_REASONS = {"rpm", "tpm", "rpd", "phantom_429", "capacity_429"}


def server_counts(server: EmulatorServer, model: str) -> tuple[int, int, int]:
    """(requests, 429s, 5xx) the emulator saw for `model`, every project."""
    requests = got_429 = got_5xx = 0
    for models in server.emulator.stats()["projects"].values():
        cell = models.get(model)
        if cell is None:
            continue
        requests += cell["requests"]
        for reason, n in cell["rejected"].items():
            if reason in _QUOTA_REASONS:
                got_429 += n
            elif reason not in ("invalid_key", "dropped"):
                got_5xx += n
    return requests, got_429, got_5xx


async def run_guard(
    server: EmulatorServer,
    prompts: list[str],
    *,
    clock: Clock,
    concurrency: int,
    minimum: float,
    models: tuple[str, ...] = CHAIN,
    retry: RetryPolicy = RetryPolicy.BATCH,
    tier: str = "free",
    pacing: bool = True,
    progress: Callable[[], None] = lambda: None,
    name: str = "Guard",
    config: GuardConfig | None = None,
    interval: float = 0.0,
    events: Path | None = None,
) -> RunResult:
    """The workload through a Guard; `pacing=False` turns its quota limiter off.
    With `config`, the Guard is built from it (its chain, tier, policies, store and
    quota section), only pointed at the emulator and the demo's clock."""
    from gemini_guard.guard import Guard, guard_from_config, guard_info

    client = _client(server)
    tally = CallTally(clock)

    def hook(event: Event) -> None:
        if isinstance(event, AttemptStarted):
            tally.sent += 1
        elif isinstance(event, AttemptFailed):
            if event.http_status == 429:
                tally.got_429 += 1
            elif event.http_status is not None and event.http_status >= 500:
                tally.got_5xx += 1

    hooks: list[Callable[[Event], None]] = [hook] if events is None else [hook, JsonlSink(events)]
    if config is not None:
        guard = guard_from_config(
            config, client=client, clock=clock, hooks=hooks, log=False, seed=1, models=models
        )
    else:
        guard = Guard(
            client=client,
            models=models,
            clock=clock,
            retry=retry,
            hooks=hooks,
            log=False,
            seed=1,
            tier=tier,
            quota=None if pacing else False,
        )
    started = clock.monotonic()

    async def one(prompt: str) -> None:
        began = tally.begin()
        try:
            response = await guard.aio.models.generate_content(model=models[0], contents=prompt)
            info = guard_info(response)
            tally.success(began, info.model if info is not None else None)
        except CallFailed:
            pass
        progress()

    try:
        await run_workers(prompts, concurrency, one, clock=clock, interval=interval)
    finally:
        await client.aio.aclose()
        client.close()
        guard.close()
    return RunResult(
        name,
        len(prompts),
        tally.succeeded,
        tally.sent,
        tally.got_429,
        tally.got_5xx,
        clock.monotonic() - started,
        minimum,
        tally.span,
        tuple(tally.served),
        tally.started,
    )


def _minutes(seconds: float) -> str:
    return "-" if seconds == float("inf") else _("{n:.1f} min", n=seconds / 60)


def results_table(results: list[RunResult], *, title: str) -> object:
    """Lost and served first: a run that gives up early also finishes early."""
    from rich.table import Table

    table = Table(title=title)
    columns = ("", _("lost"), _("served"), _("sent"), "429s", "5xx")
    for column in (*columns, _("emulated time"), _("minimum")):
        table.add_column(column, justify="left" if not column else "right")
    for r in results:
        table.add_row(
            _(r.name),
            str(r.lost),
            f"{r.succeeded}/{r.prompts}",
            str(r.sent),
            str(r.got_429),
            str(r.got_5xx),
            _minutes(r.elapsed),
            _minutes(r.minimum),
        )
    return table


def results_json(results: list[RunResult]) -> list[dict[str, object]]:
    """The runs as `demo --json` prints them (schema in docs/cli.md)."""
    return [
        {
            "name": r.name,
            "prompts": r.prompts,
            "lost": r.lost,
            "served": r.succeeded,
            "sent": r.sent,
            "got_429": r.got_429,
            "got_5xx": r.got_5xx,
            "emulated_seconds": round(r.elapsed, 3),
            "minimum_seconds": None if r.minimum == float("inf") else round(r.minimum, 3),
        }
        for r in results
    ]


def _early_finish_note(results: list[RunResult]) -> str:
    """Why a run that lost prompts may show the shorter time."""
    notes = []
    best = min(results, key=lambda r: r.lost)
    for r in results:
        if r.lost > best.lost and r.elapsed < best.elapsed:
            notes.append(
                _(
                    "{name} took less emulated time because it gave up on {lost} prompts.",
                    name=_(r.name),
                    lost=r.lost,
                )
            )
    return " ".join(notes)


async def _demo(
    prompts: int,
    concurrency: int,
    speed: float,
    config: GuardConfig | None = None,
    events: Path | None = None,
    *,
    show_progress: bool = True,
) -> list[RunResult]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    scenario = bad_day_scenario()
    texts = [f"Summarise note {i} in one sentence." for i in range(prompts)]
    results: list[RunResult] = []
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not show_progress,
    ) as bar:
        for name in ("guide's loop", "Guard"):
            task = bar.add_task(_(name), total=prompts)
            clock = ScaledClock(speed)
            with serve(scenario, clock=clock) as server:

                def tick(task_id: TaskID = task) -> None:
                    bar.advance(task_id)

                if name.startswith("guide"):
                    minimum = theoretical_minimum(scenario, (FLASH,), prompts)
                    result = await run_guide(
                        server,
                        texts,
                        clock=clock,
                        concurrency=concurrency,
                        minimum=minimum,
                        progress=tick,
                    )
                else:
                    chain = (config.models if config is not None else ()) or CHAIN
                    minimum = theoretical_minimum(scenario, chain, prompts)
                    result = await run_guard(
                        server,
                        texts,
                        clock=clock,
                        concurrency=concurrency,
                        minimum=minimum,
                        models=chain,
                        progress=tick,
                        config=config,
                        events=events,
                    )
            results.append(result)
    return results


@main.command(cls=GuardCommand)
@click.option("--prompts", default=200, show_default=True, help="Prompts in the workload.")
@click.option("--concurrency", default=8, show_default=True, help="Requests in flight.")
@time_scale_option(60.0, "Clock speed-up: emulated seconds per real second.")
@config_option(
    "Build the Guard from this gemini-guard.toml (chain, tier, policies, store, "
    "quota); it still talks to the emulator, with no key."
)
@json_option
def demo(
    prompts: int, concurrency: int, time_scale: float, config_path: Path | None, as_json: bool
) -> None:
    """Replay a bad day of Gemini offline: the guide's retry loop against the Guard."""
    from rich.console import Console

    speed = effective_time_scale(time_scale) or 60.0
    if prompts < 1 or concurrency < 1:
        raise click.BadParameter(_("--prompts and --concurrency must be >= 1"))
    config = load_cli_config(config_path) if config_path is not None else None
    console = Console()
    # The Guard logs breaker changes as warnings; here the table tells the story, and
    # log lines would tear the live progress display.
    logging.getLogger("gemini_guard").setLevel(logging.ERROR)
    if not as_json:
        console.print(
            _(
                "[bold]A bad day of Gemini[/bold] (emulated, no key, no network): the free tier "
                "cut of 2025-12-06 in force, and gemini-2.5-pro answering 503 85% of the time."
            )
            + "\n"
            + _(
                "{prompts} prompts, {concurrency} at a time, clock x{speed}.",
                prompts=prompts,
                concurrency=concurrency,
                speed=f"{speed:g}",
            )
            + "\n"
        )
    wall = SystemClock()  # the real time the demo takes, shown to the user
    started = wall.monotonic()
    # The Guard's events, for the report the table ends with (kept for the user to
    # open); `--json` writes no report, so its folder goes once the run ends.
    folder = Path(tempfile.mkdtemp(prefix="gemini-guard-demo-"))
    events = folder / "events.jsonl"
    try:
        results = asyncio.run(
            _demo(prompts, concurrency, speed, config, events, show_progress=not as_json)
        )
    finally:
        if as_json:
            shutil.rmtree(folder, ignore_errors=True)
    real = wall.monotonic() - started
    if as_json:
        payload = {
            "scenario": "bad-day",
            "prompts": prompts,
            "concurrency": concurrency,
            "time_scale": speed,
            "runs": results_json(results),
            "real_seconds": round(real, 3),
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    console.print(results_table(results, title=_("Same workload, same emulated day")))
    guard_line = (
        _("Guard: built from {source}.", source=config.source)
        if config is not None
        else _("Guard: pro → flash → flash-lite, batch preset, paced for the free tier.")
    )
    console.print(
        _("guide: flash only (its snippet names one model); ")
        + guard_line
        + "\n"
        + _(
            "lost: prompts that got no answer; sent: requests sent; emulated time: on the "
            "emulator's clock (x{speed}); minimum: every model used at its full per-minute "
            "limit until its per-day limit is spent, faults aside.",
            speed=f"{speed:g}",
        )
        + "\n"
        + (_early_finish_note(results) + "\n" if _early_finish_note(results) else "")
        + _("done in {seconds} s real time.", seconds=f"{real:.0f}")
    )
    from gemini_guard.telemetry.report import write_report

    tier = config.tier if config is not None else "free"
    console.print(_("report of the Guard's run: {path}", path=str(write_report(events, tier=tier))))
