"""What the gateway adds: latency over a direct call, requests per second, memory.

    python -m bench gateway [--requests N] [--soak SECONDS] [--upstream emulator|fixed]

Processes: the upstream (the emulator with the `healthy` scenario, or a minimal server
that answers a fixed generateContent body at once, to see the gateway's own ceiling),
`gemini-guard serve` in front of it (one worker), and this process as the client
(aiohttp, the fastest client measured here). Side by side in one run, per concurrency:
the same requests sent directly to the upstream and through the gateway; the added
latency is the difference of the two p50s (and p99s). Then requests per second through
the gateway at concurrency 64, and the gateway's RSS before and after `--soak` seconds
at concurrency 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.upstream_clients import _serve as serve_fixed

TOKEN = "bench-gateway-token"
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Say hi in five words."}]}]})
PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


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


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench gateway")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--upstream", choices=("emulator", "fixed"), default="emulator")
    args = parser.parse_args(argv)

    upstream_port, gateway_port = _free_port(), _free_port()
    children: list[subprocess.Popen[bytes]] = []
    fixed: multiprocessing.context.ForkProcess | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = {**os.environ, "BENCH_GOOGLE_KEY": "bench-upstream-key", "BENCH_TOKEN": TOKEN}
    cli = [sys.executable, "-m", "gemini_guard"]
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
        config = workdir / "gemini-guard.toml"
        config.write_text(
            f'base_url = "http://127.0.0.1:{upstream_port}"\n'
            'models = ["gemini-2.5-flash"]\n'
            '[[projects]]\nname = "bench"\napi_key_env = "BENCH_GOOGLE_KEY"\n'
            "[telemetry]\nlog = false\n"
            '[[gateway.tokens]]\nname = "bench"\ntoken_env = "BENCH_TOKEN"\n'
        )
        gateway = subprocess.Popen(
            [*cli, "serve", "--config", str(config), "--port", str(gateway_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        children.append(gateway)
        _wait_listening(gateway_port, gateway)
        direct_url = f"http://127.0.0.1:{upstream_port}{PATH}"
        via_url = f"http://127.0.0.1:{gateway_port}{PATH}"
        print(f"upstream: {args.upstream}; {args.requests} requests per cell")
        print(
            f"{'concurrency':>11} {'direct p50':>11} {'gateway p50':>12} {'added p50':>10} "
            f"{'added p99':>10} {'gw req/s':>9} {'errors':>7}"
        )
        for level in (1, 32, 200):
            n = args.requests if level > 1 else min(args.requests, 1000)
            direct = asyncio.run(
                _load(direct_url, "bench-upstream-key", requests=n, concurrency=level)
            )
            via = asyncio.run(_load(via_url, TOKEN, requests=n, concurrency=level))
            print(
                f"{level:>11} {direct['p50_ms']:>10.2f}m {via['p50_ms']:>11.2f}m "
                f"{via['p50_ms'] - direct['p50_ms']:>9.2f}m "
                f"{via['p99_ms'] - direct['p99_ms']:>9.2f}m "
                f"{via['rps']:>9.0f} {via['errors'] + direct['errors']:>7.0f}"
            )
        throughput = asyncio.run(_load(via_url, TOKEN, requests=args.requests, concurrency=64))
        print(f"gateway, one worker, concurrency 64: {throughput['rps']:.0f} req/s")
        before = _rss_kib(gateway.pid)
        soak = asyncio.run(_load(via_url, TOKEN, requests=0, concurrency=200, seconds=args.soak))
        after = _rss_kib(gateway.pid)
        print(
            f"RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after {args.soak:g} s "
            f"at concurrency 200 ({soak['n']:.0f} requests, {soak['errors']:.0f} errors): "
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
