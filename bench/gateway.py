"""What the gateway adds: latency over a direct call, requests per second, memory; and
LiteLLM's proxy server in the same place, side by side.

    python -m bench gateway [--requests N] [--rounds R] [--soak SECONDS]
                            [--upstream emulator|fixed] [--modes auto,asyncio]
                            [--no-litellm] [--baseline SRC]

Processes: the upstream (the emulator with the `healthy` scenario, or a minimal server
that answers a fixed generateContent body at once, to see each proxy's own ceiling);
in front of it `gemini-guard serve` (one worker per `--modes` entry: `auto` is
uvicorn's default, uvloop and httptools when installed; `asyncio` forces asyncio's
loop and h11) and LiteLLM's proxy server (`litellm --config`, one worker, its defaults,
the model's `api_base` pointing at the same upstream; the `bench` extra installs it);
and this process as the client (aiohttp, the fastest client measured here).

Every contender is sent the same generateContent request on the Gemini surface
(LiteLLM's proxy serves `/v1beta/models/{m}:generateContent` too, with its master key
as `x-goog-api-key`). Per concurrency and round, the direct request and each contender
run one after another, in alternating order from round to round (the machine is
shared: compare within a run); the added latency is a contender's p50 (p99) minus the
direct p50 (p99) of the same round, and the table shows the median over rounds. Then
requests per second at concurrency 64 for the upstream alone (with the emulator's CPU
time per request: the machine the proxies run on is shared with it) and for each
contender, and each gateway's RSS before and after `--soak` seconds at concurrency 200
(0: no soak), one after the other. Each load starts once every server process is idle
(LiteLLM's proxy used a quarter of a core in the half second after a load at
concurrency 200 ended).

`--baseline SRC` adds one more gateway, the same configuration served from another
source tree (a checkout's `src/` folder, e.g. `git worktree add /tmp/old <commit>`):
a change measured against the code before it, side by side in one run. The requests
per second table also gives each proxy process's CPU time per request (user + system,
from /proc), which a noisy machine disturbs less than a rate.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.upstream_clients import _serve as serve_fixed

TOKEN = "bench-gateway-token"
UPSTREAM_KEY = "bench-upstream-key"
LITELLM_KEY = "sk-bench-litellm-master-key"
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Say hi in five words."}]}]})
MODEL = "gemini-2.5-flash"
PATH = f"/v1beta/models/{MODEL}:generateContent"
LEVELS = (1, 32, 200)


@dataclass
class Contender:
    name: str
    url: str
    key: str
    process: subprocess.Popen[bytes] | None = None
    p50: dict[int, list[float]] = field(default_factory=dict)
    added_p50: dict[int, list[float]] = field(default_factory=dict)
    added_p99: dict[int, list[float]] = field(default_factory=dict)
    rps: dict[int, list[float]] = field(default_factory=dict)
    cpu_us: list[float] = field(default_factory=list)  # per request, at concurrency 64
    errors: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """LiteLLM's proxy listens before its router is ready: wait for its liveness."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LiteLLM's proxy exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within 90 s")


def _cpu_seconds(pid: int) -> float:
    """User + system time of process `pid` so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(pids: list[int], *, window: float = 0.25, limit: float = 30.0) -> bool:
    """Wait until the servers are idle: under a twentieth of a core together over
    `window` seconds. A proxy may go on working after its load ends (its logging,
    requests its client gave up on), on the cores the next contender's load needs.
    False when they were still busy after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        before = sum(_cpu_seconds(pid) for pid in pids)
        time.sleep(window)
        if sum(_cpu_seconds(pid) for pid in pids) - before < window / 20:
            return True
        if time.monotonic() > deadline:
            return False


@dataclass
class Servers:
    """The server processes of a run, let go quiet before each load."""

    pids: list[int]
    busy: int = 0  # loads started with the servers still busy after the wait

    def settle(self) -> None:
        if not _settle(self.pids):
            self.busy += 1


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _load(
    url: str, key: str, *, requests: int, concurrency: int, seconds: float | None = None
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    stop_at = None if seconds is None else time.perf_counter() + seconds
    headers = {"x-goog-api-key": key, "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)

        async def worker() -> None:
            nonlocal remaining
            while (stop_at is None and remaining > 0) or (
                stop_at is not None and time.perf_counter() < stop_at
            ):
                remaining -= 1
                await one()

        for _ in range(min(concurrency, 16)):
            await one()  # warm the connections
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "errors": errors,
        "n": len(latencies),
    }


def _gateway_config(workdir: Path, upstream_port: int, store: str | None = None) -> Path:
    config = workdir / "gemini-guard.toml"
    config.write_text(
        f'base_url = "http://127.0.0.1:{upstream_port}"\n'
        + (f'store = "{store}"\n' if store else "")
        + f'models = ["{MODEL}"]\n'
        '[[projects]]\nname = "bench"\napi_key_env = "BENCH_GOOGLE_KEY"\n'
        "[telemetry]\nlog = false\n"
        '[[gateway.tokens]]\nname = "bench"\ntoken_env = "BENCH_TOKEN"\n'
    )
    return config


def _litellm_config(workdir: Path, upstream_port: int) -> Path:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: gemini/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1beta\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    return config


def _litellm_command() -> list[str] | None:
    """LiteLLM's proxy command, or None (printed why) when it is not installed."""
    # apscheduler: one of the proxy extra's own dependencies (the `dev` extra's LiteLLM
    # comes without them).
    missing = [m for m in ("litellm", "apscheduler") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"LiteLLM's proxy is not measured: {', '.join(missing)} not installed; "
            "pip install 'gemini-guard[bench]'"
        )
        return None
    found = Path(sys.executable).with_name("litellm")
    command = str(found) if found.exists() else shutil.which("litellm")
    if command is None:
        print("LiteLLM's proxy is not measured: no `litellm` command on PATH")
        return None
    return [command]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _measure(
    direct: Contender,
    contenders: list[Contender],
    servers: Servers,
    *,
    requests: int,
    rounds: int,
) -> None:
    for level in LEVELS:
        n = requests if level > 1 else min(requests, 1000)
        for round_ in range(rounds):
            order = contenders if round_ % 2 == 0 else contenders[::-1]
            servers.settle()
            base = asyncio.run(_load(direct.url, direct.key, requests=n, concurrency=level))
            direct.errors += int(base["errors"])
            direct.p50.setdefault(level, []).append(base["p50_ms"])
            for contender in order:
                servers.settle()
                via = asyncio.run(
                    _load(contender.url, contender.key, requests=n, concurrency=level)
                )
                contender.errors += int(via["errors"])
                contender.added_p50.setdefault(level, []).append(via["p50_ms"] - base["p50_ms"])
                contender.added_p99.setdefault(level, []).append(via["p99_ms"] - base["p99_ms"])
                contender.rps.setdefault(level, []).append(via["rps"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench gateway")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--upstream", choices=("emulator", "fixed"), default="emulator")
    parser.add_argument(
        "--modes",
        default="auto",
        help="gateway processes to measure, comma-separated: auto (uvloop and httptools "
        "when installed), asyncio (asyncio's loop and h11)",
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's proxy out")
    parser.add_argument(
        "--store",
        default=None,
        help="the gateways' store URL (e.g. redis://127.0.0.1:6379/15, as replicas share "
        "one); default: memory://",
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        type=Path,
        help="also serve the gateway from this source tree (a checkout's src/ folder), "
        "measured in the same run",
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("auto", "asyncio") for m in modes):
        parser.error(f"--modes {args.modes!r}: use auto, asyncio or both (auto,asyncio)")
    if args.baseline is not None and not (args.baseline / "gemini_guard").is_dir():
        parser.error(
            f"--baseline {args.baseline}: no gemini_guard package there; give a "
            "checkout's src/ folder"
        )

    upstream_port = _free_port()
    children: list[subprocess.Popen[bytes]] = []
    fixed: multiprocessing.context.ForkProcess | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = {
        **os.environ,
        "BENCH_GOOGLE_KEY": UPSTREAM_KEY,
        "BENCH_TOKEN": TOKEN,
        # LiteLLM reads its price map from the package instead of fetching it.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    cli = [sys.executable, "-m", "gemini_guard"]
    emulator: subprocess.Popen[bytes] | None = None
    try:
        if args.upstream == "emulator":
            emulator = subprocess.Popen(
                [*cli, "emulate", "--scenario", "healthy", "--port", str(upstream_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            children.append(emulator)
            _wait_listening(upstream_port, emulator)
        else:
            sock = socket.socket()
            sock.bind(("127.0.0.1", upstream_port))
            sock.listen(1024)
            process = multiprocessing.get_context("fork").Process(
                target=serve_fixed, args=(sock,), daemon=True
            )
            process.start()
            fixed = process
            sock.close()
        config = _gateway_config(workdir, upstream_port, args.store)
        contenders: list[Contender] = []
        served = [(mode, None) for mode in modes]
        if args.baseline is not None:
            served.append((modes[0], args.baseline.resolve()))
        for mode, source in served:
            port = _free_port()
            extra = [] if mode == "auto" else ["--loop", "asyncio", "--http", "h11"]
            gateway_env = env if source is None else {**env, "PYTHONPATH": str(source)}
            gateway = subprocess.Popen(
                [*cli, "serve", "--config", str(config), "--port", str(port), *extra],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=gateway_env,
            )
            children.append(gateway)
            _wait_listening(port, gateway)
            name = "gateway" if len(modes) == 1 else f"gateway ({mode})"
            if source is not None:
                name += " baseline"
            contenders.append(
                Contender(name, f"http://127.0.0.1:{port}{PATH}", TOKEN, process=gateway)
            )
        litellm = None if args.no_litellm else _litellm_command()
        if litellm is not None:
            port = _free_port()
            where = ["--host", "127.0.0.1", "--port", str(port)]
            litellm_config = _litellm_config(workdir, upstream_port)
            proxy = subprocess.Popen(
                [*litellm, "--config", str(litellm_config), *where],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=workdir,
            )
            children.append(proxy)
            _wait_healthy(f"http://127.0.0.1:{port}/health/liveliness", proxy)
            contenders.append(
                Contender(
                    "LiteLLM proxy", f"http://127.0.0.1:{port}{PATH}", LITELLM_KEY, process=proxy
                )
            )
        direct = Contender(
            "the upstream, direct",
            f"http://127.0.0.1:{upstream_port}{PATH}",
            UPSTREAM_KEY,
            process=emulator,
        )
        print(
            f"upstream: {args.upstream}; {args.requests} requests per cell "
            f"({min(args.requests, 1000)} at concurrency 1), {args.rounds} rounds; "
            f"load average {_load_average()}"
        )
        servers = Servers([child.pid for child in children])
        if fixed is not None and fixed.pid is not None:
            servers.pids.append(fixed.pid)
        _measure(direct, contenders, servers, requests=args.requests, rounds=args.rounds)
        print(
            f"{'contender':>20} {'concurrency':>11} {'direct p50':>11} {'added p50':>10} "
            f"{'added p99':>10} {'req/s':>7}"
        )
        for level in LEVELS:
            for contender in contenders:
                print(
                    f"{contender.name:>20} {level:>11} {_median(direct.p50[level]):>10.2f}m "
                    f"{_median(contender.added_p50[level]):>9.2f}m "
                    f"{_median(contender.added_p99[level]):>9.2f}m "
                    f"{_median(contender.rps[level]):>7.0f}"
                )
        # The upstream alone too: its own rate and CPU are what the proxies share the
        # machine with.
        loaded = [direct, *contenders]
        throughput: dict[str, list[float]] = {c.name: [] for c in loaded}
        for round_ in range(args.rounds):
            for contender in loaded if round_ % 2 == 0 else loaded[::-1]:
                pid = contender.process.pid if contender.process is not None else None
                servers.settle()
                cpu_before = _cpu_seconds(pid) if pid is not None else 0.0
                result = asyncio.run(
                    _load(contender.url, contender.key, requests=args.requests, concurrency=64)
                )
                if pid is not None:
                    # The warm-up requests count too: the CPU is read around the whole load.
                    sent = result["n"] + min(64, 16)
                    contender.cpu_us.append((_cpu_seconds(pid) - cpu_before) / sent * 1e6)
                contender.errors += int(result["errors"])
                throughput[contender.name].append(result["rps"])
        for contender in loaded:
            cpu = (
                f", {_median(contender.cpu_us):,.0f} µs CPU per request (whole process)"
                if contender.cpu_us
                else ""
            )
            print(
                f"{contender.name}, one worker, concurrency 64: "
                f"{_median(throughput[contender.name]):,.0f} req/s{cpu} "
                f"({contender.errors} errors in the run)"
            )
        print(f"load average after the run: {_load_average()}")
        if servers.busy:
            print(f"{servers.busy} loads began with a server still busy after 30 s of waiting")
        # Each gateway soaked in turn (the baseline too, for a side-by-side figure).
        soaked = [c for c in contenders if c.process is not None and c.name.startswith("gateway")]
        for contender in soaked if args.soak > 0 else []:
            assert contender.process is not None
            servers.settle()
            before = _rss_kib(contender.process.pid)
            soak = asyncio.run(
                _load(contender.url, TOKEN, requests=0, concurrency=200, seconds=args.soak)
            )
            after = _rss_kib(contender.process.pid)
            print(
                f"{contender.name}: RSS {before / 1024:.1f} MiB before, "
                f"{after / 1024:.1f} MiB after {args.soak:g} s at concurrency 200 "
                f"({soak['n']:.0f} requests, {soak['errors']:.0f} errors): "
                f"{(after - before) / before * 100:+.1f}%"
            )
    finally:
        for child in children:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if fixed is not None:
            fixed.terminate()
            fixed.join()
        shutil.rmtree(workdir, ignore_errors=True)
