"""What a call costs under concurrency, and how that cost grows.

    python -m bench scale [--requests N] [--concurrency 1,10,100,1000]
                          [--modes async,sync] [--paths NAME,...] [--rounds R]
                          [--no-acquire] [--record]

Part 1, calls: side by side in one run, the bare SDK and the Guard (default; without
pacing; paced at a tier-3 limit; paced over a 20-project pool; with the response cache
on) and the same Guard reached as `guard.client`, each through asyncio
(`aio.models.generate_content`) and through threads (`models.generate_content`), at
each concurrency, against the `healthy` emulator in its own process. Each cell is a
fresh client (and Guard) warmed by 20 calls, then `--requests` calls with that many in
flight; the paths take turns within a concurrency level and `--rounds` repeats the
turn, so a drift of the machine hits them alike. Reported: req/s, p50/p99 latency, the
client's CPU per call (process time over the cell: every thread of this process), and
RSS growth per 1,000 calls in flight (peak during the cell minus before it, sampled
every 20 ms). The model is gemini-2.5-flash-lite, whose tier-3 limit (30,000 RPM) is
far above what one cell sends: the paced paths book every call without waiting, so
they measure the ledger's cost, not its pacing.

Part 2, acquire: one `reserve` as the window grows (10, 2,000, 30,000 RPM, each
store kept at its steady state: the window holds about `rpm` slots), and a pool's
`reserve(project="*")` as the pool grows (1, 20, 200 projects), per store.

`--record` writes both tables into the "Scale" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import resource
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from bench.emulator_throughput import _start_emulator
from bench.quota_acquire import _bench_reserve, _percentiles, _start_redis
from gemini_guard import Guard
from gemini_guard.clock import FakeClock
from gemini_guard.quota import Project, ProjectPool

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gemini-2.5-flash-lite"
PATHS = ("bare SDK", "Guard", "Guard quota=False", "Guard tier3", "Guard pool20", "Guard cache")
PATHS_ALL = (*PATHS, "guard.client")


@dataclass
class Cell:
    mode: str
    concurrency: int
    path: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # client CPU per call
    rss_kib_per_1000: float


# -- the contenders ---------------------------------------------------------------------


def _client(base_url: str) -> genai.Client:
    # The attempt timeout on the client, as the Guard's docs advise (no per-call config).
    return genai.Client(
        api_key="bench",
        http_options=types.HttpOptions(base_url=base_url, timeout=60_000),
    )


def _guard(path: str, client: genai.Client) -> Guard:
    if path == "Guard quota=False":
        return Guard(client=client, models=[MODEL], log=False, quota=False)
    if path == "Guard tier3":
        return Guard(client=client, models=[MODEL], log=False, tier="tier3")
    if path == "Guard pool20":
        pool = ProjectPool(
            [Project(f"bench-{i}", keys=(f"bench-key-{i:02d}",), tier="tier3") for i in range(20)]
        )
        return Guard(client=client, models=[MODEL], log=False, quota=pool)
    if path == "Guard cache":
        return Guard(client=client, models=[MODEL], log=False, cache="memory://")
    return Guard(client=client, models=[MODEL], log=False)  # "Guard", "guard.client"


def _models(path: str, client: genai.Client, guard: Guard | None, *, aio: bool) -> Any:
    """What a contender calls `generate_content` on."""
    if guard is None:
        return client.aio.models if aio else client.models
    if path == "guard.client":
        return guard.client.aio.models if aio else guard.client.models
    return guard.aio.models if aio else guard.models


@contextlib.contextmanager
def _contender(path: str, base_url: str) -> Iterator[Any]:
    """The sync `models` of one fresh contender."""
    client = _client(base_url)
    guard = None if path == "bare SDK" else _guard(path, client)
    try:
        yield _models(path, client, guard, aio=False)
    finally:
        if guard is not None:
            guard.close()
        client.close()


# -- one cell -----------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


class _RssPeak:
    """Peak RSS over a block, sampled by a thread every 20 ms."""

    def __init__(self) -> None:
        self.before = _rss_kib()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_kib())

    def __enter__(self) -> _RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_kib())


def _summary(
    mode: str, level: int, path: str, latencies: list[float], wall: float, cpu: float, rss: _RssPeak
) -> Cell:
    ordered = sorted(latencies)
    n = len(ordered)
    return Cell(
        mode=mode,
        concurrency=level,
        path=path,
        rps=n / wall,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(n - 1, int(n * 0.99))] * 1000,
        cpu_us=cpu / n * 1e6,
        rss_kib_per_1000=max(0, rss.peak - rss.before) * 1000 / level,
    )


async def _async_cell(models: Any, path: str, level: int, requests: int) -> Cell:
    async def call(prompt: str) -> None:
        await models.generate_content(model=MODEL, contents=prompt)

    await asyncio.gather(*(call(f"warm {i}") for i in range(20)))
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(f"{path} {level} prompt {i}")
            latencies.append(time.perf_counter() - t0)

    with _RssPeak() as rss:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(level)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _summary("async", level, path, latencies, wall, cpu, rss)


def _sync_cell(models: Any, path: str, level: int, requests: int) -> Cell:
    def call(prompt: str) -> None:
        models.generate_content(model=MODEL, contents=prompt)

    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            call(f"{path} {level} prompt {i}")
            latencies.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=level) as pool:
        list(pool.map(call, [f"warm {i}" for i in range(20)]))
        with _RssPeak() as rss:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for future in [pool.submit(worker) for _ in range(level)]:
                future.result()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _summary("sync", level, path, latencies, wall, cpu, rss)


def calls(
    base_url: str,
    *,
    modes: list[str],
    levels: list[int],
    paths: list[str],
    requests: int,
    rounds: int,
    progress: Callable[[Cell], None] = lambda cell: None,
) -> list[Cell]:
    """Every cell, each the median of `rounds` turns (by req/s)."""
    cells: list[Cell] = []
    for mode in modes:
        for level in levels:
            n = max(requests, 2 * level)
            turns: dict[str, list[Cell]] = {path: [] for path in paths}
            for _ in range(rounds):
                for path in paths:
                    if mode == "async":
                        cell = asyncio.run(_async_contender_cell(path, base_url, level, n))
                    else:
                        with _contender(path, base_url) as sync_models:
                            cell = _sync_cell(sync_models, path, level, n)
                    turns[path].append(cell)
            for path in paths:
                ordered = sorted(turns[path], key=lambda c: c.rps)
                cells.append(ordered[len(ordered) // 2])
                progress(cells[-1])
    return cells


async def _async_contender_cell(path: str, base_url: str, level: int, n: int) -> Cell:
    """One async cell on a contender made and closed inside this event loop (aiohttp
    sessions belong to the loop that opened them)."""
    client = _client(base_url)
    guard = None if path == "bare SDK" else _guard(path, client)
    try:
        return await _async_cell(_models(path, client, guard, aio=True), path, level, n)
    finally:
        if guard is not None:
            await guard.aclose()
        await client.aio.aclose()


# -- part 2: acquire ------------------------------------------------------------------------


def _bench_pool(url: str, projects: int, n: int) -> tuple[float, float]:
    """`ProjectPool.reserve(project="*")`, each project's window at its steady state."""
    clock = FakeClock()
    rpm = 2000
    pool = ProjectPool(
        [
            Project(f"bench-{projects}-{i}", keys=(f"pool-key-{projects}-{i}",))
            for i in range(projects)
        ],
        store=url,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": rpm, "tpm": rpm * 1000, "rpd": 10**9}},
        latency_allowance=0.0,
    )
    step = 60.0 / rpm / projects  # the pool as a whole runs at its limit's pace
    samples = []
    for index in range(n + 200):
        started = time.perf_counter_ns()
        permit = pool.reserve(project="*", model=MODEL, tokens=100)
        if index >= 200:
            samples.append(time.perf_counter_ns() - started)
        pool.settle(permit, sent=True)
        clock.advance(step)
    pool.close()
    return _percentiles(samples)


def acquire(workdir: Path) -> list[tuple[str, str, float, float]]:
    rows: list[tuple[str, str, float, float]] = []
    stores: list[tuple[str, Callable[[str], str], int]] = [
        ("memory", lambda name: "memory://", 5000),
        ("sqlite", lambda name: f"sqlite:///{workdir / name}.db", 1000),
    ]
    redis_process = None
    started = _start_redis(workdir)
    if started is not None:
        redis_process, port = started
        stores.append(("redis", lambda name: f"redis://127.0.0.1:{port}/0", 1000))
    try:
        for store, url, n in stores:
            for rpm in (10, 2000, 30_000):
                p50, p99 = _bench_reserve(url(f"reserve-{rpm}"), rpm, n)
                rows.append((store, f"reserve, {rpm:,} RPM window", p50, p99))
            for projects in (1, 20, 200):
                p50, p99 = _bench_pool(url(f"pool-{projects}"), projects, n)
                rows.append((store, f"pool reserve, {projects} projects", p50, p99))
    finally:
        if redis_process is not None:
            redis_process.kill()
            redis_process.wait()
    return rows


# -- report -----------------------------------------------------------------------------------


def _calls_table(cells: list[Cell]) -> str:
    lines = [
        "| mode | in flight | path | req/s | p50 ms | p99 ms | CPU µs/call | CPU vs bare "
        "| RSS KiB per 1,000 in flight |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    bare = {(c.mode, c.concurrency): c for c in cells if c.path == "bare SDK"}
    for c in cells:
        base = bare.get((c.mode, c.concurrency))
        ratio = f"{c.cpu_us / base.cpu_us:.2f}x" if base else "-"
        # Below 100 in flight the growth is a few pages, and scaled up it says nothing.
        rss = f"{c.rss_kib_per_1000:,.0f}" if c.concurrency >= 100 else "-"
        lines.append(
            f"| {c.mode} | {c.concurrency:,} | {c.path} | {c.rps:,.0f} | {c.p50_ms:.1f} "
            f"| {c.p99_ms:.1f} | {c.cpu_us:,.0f} | {ratio} | {rss} |"
        )
    return "\n".join(lines)


def _acquire_table(rows: list[tuple[str, str, float, float]]) -> str:
    lines = ["| store | operation | p50 µs | p99 µs |", "|---|---|---|---|"]
    lines += [f"| {s} | {what} | {p50:.1f} | {p99:.1f} |" for s, what, p50, p99 in rows]
    return "\n".join(lines)


_SECTION = "## Scale"


def _record(text_block: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text("utf-8")
    if _SECTION in text:
        start = text.index(_SECTION)
        nxt = text.find("\n## ", start + len(_SECTION))
        end = len(text) if nxt == -1 else nxt + 1
        text = text[:start] + text_block.rstrip("\n") + "\n\n" + text[end:].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + text_block
    path.write_text(text.rstrip("\n") + "\n", "utf-8")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,10,100,1000")
    parser.add_argument("--modes", default="async,sync")
    parser.add_argument("--paths", default=",".join(PATHS_ALL))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-acquire", action="store_true")
    parser.add_argument("--no-calls", action="store_true")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(paths) - set(PATHS_ALL))
    if unknown:
        parser.error(f"unknown path(s) {unknown}; known: {', '.join(PATHS_ALL)}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    blocks = [
        f"{_SECTION}\n\n`python -m bench scale {' '.join(argv)}`".rstrip()
        + f" — {dt.date.today().isoformat()}, {machine}, one run.\n"
    ]
    if not args.no_calls:
        proc, base_url = _start_emulator()
        try:
            cells = calls(
                base_url,
                modes=[m.strip() for m in args.modes.split(",")],
                levels=[int(x) for x in args.concurrency.split(",")],
                paths=paths,
                requests=args.requests,
                rounds=args.rounds,
                progress=lambda c: print(
                    f"  {c.mode} c={c.concurrency} {c.path}: {c.rps:,.0f} req/s, "
                    f"{c.cpu_us:,.0f} µs CPU/call",
                    flush=True,
                ),
            )
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        table = _calls_table(cells)
        print("\n" + table)
        where = "healthy emulator in its own process"
        blocks.append(f"Calls ({args.requests:,} per cell, {where}):\n\n{table}\n")
    if not args.no_acquire:
        with tempfile.TemporaryDirectory() as tmp:
            rows = acquire(Path(tmp))
        table = _acquire_table(rows)
        print("\n" + table)
        blocks.append(f"One acquire (FakeClock, steady-state windows):\n\n{table}\n")
    if args.record:
        _record("\n".join(blocks))
