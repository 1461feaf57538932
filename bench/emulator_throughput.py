"""Emulator throughput on loopback: requests per second with one uvicorn worker.

The emulator runs as `gemini-guard emulate --scenario healthy` (its own process,
one worker, no quotas, no faults); several httpx clients send a bounded number of
generateContent requests. Results are printed and appended to docs/benchmarks.md
under "Emulator throughput", so later benchmarks know the emulator is not their
bottleneck.

    python -m bench emulator_throughput [--requests 2000] [--clients 4] [--per-client 4]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Emulator throughput"
BODY = {
    "contents": [{"role": "user", "parts": [{"text": "Benchmark prompt: say something short."}]}]
}


def _start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    cli = str(Path(sys.executable).with_name("gemini-guard"))
    proc = subprocess.Popen(
        [cli, "emulate", "--port", "0", "--scenario", "healthy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
    seen = b""
    while b"Ctrl-C" not in seen:
        if not selector.select(30):
            proc.kill()
            raise SystemExit("the emulator did not start within 30 s")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise SystemExit(f"the emulator exited: {seen.decode()}")
        seen += chunk
    selector.close()
    match = re.search(r"listening on (http://\S+)", seen.decode())
    assert match
    return proc, match.group(1)


async def _load(
    base_url: str, *, requests: int, clients: int, per_client: int
) -> tuple[float, list[float]]:
    url = "/v1beta/models/gemini-2.5-flash:generateContent"
    remaining = requests
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.post(url, json=BODY, headers={"x-goog-api-key": "bench"})
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()

    pool = [
        httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=per_client))
        for _ in range(clients)
    ]
    # Warm up connections and code paths, outside the measurement.
    await asyncio.gather(
        *(c.post(url, json=BODY, headers={"x-goog-api-key": "bench"}) for c in pool)
    )
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in pool for _ in range(per_client)))
    elapsed = time.perf_counter() - started
    for client in pool:
        await client.aclose()
    return elapsed, latencies


def _record(line: str) -> None:
    header = (
        "| date | requests | concurrency | req/s | p50 ms | p99 ms | machine |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    if HEADING not in text:
        intro = (
            f"\n{HEADING}\n\n`python -m bench emulator_throughput`: generateContent on loopback"
            " against `gemini-guard emulate --scenario healthy` (one uvicorn worker,"
            " no quotas), driven by httpx clients in another process.\n\n" + header
        )
        text = text.rstrip("\n") + "\n" + intro
    # Insert the row at the end of this section's table.
    start = text.index(HEADING)
    next_heading = text.find("\n## ", start + len(HEADING))
    end = len(text) if next_heading < 0 else next_heading
    section = text[start:end].rstrip("\n") + "\n" + line + "\n"
    text = text[:start] + section + ("\n" + text[end:].lstrip("\n") if next_heading >= 0 else "")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench emulator_throughput")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=4, help="concurrent requests per client")
    parser.add_argument("--no-record", action="store_true", help="print only; do not touch docs/")
    args = parser.parse_args(argv)
    proc, base_url = _start_emulator()
    try:
        elapsed, latencies = asyncio.run(
            _load(
                base_url, requests=args.requests, clients=args.clients, per_client=args.per_client
            )
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    rate = len(latencies) / elapsed
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    concurrency = args.clients * args.per_client
    print(
        f"emulator throughput: {len(latencies)} requests in {elapsed:.2f} s = {rate:.0f} req/s"
        f" (concurrency {concurrency}; p50 {p50:.1f} ms, p99 {p99:.1f} ms)"
    )
    if not args.no_record:
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        today = dt.date.today().isoformat()
        cells = [
            today,
            len(latencies),
            concurrency,
            f"{rate:.0f}",
            f"{p50:.1f}",
            f"{p99:.1f}",
            machine,
        ]
        _record("| " + " | ".join(str(c) for c in cells) + " |")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
