"""What Prometheus metrics (and the alert rules) add to a guarded call.

    python -m bench telemetry_overhead [--calls 2000] [--loops 20000]

1. Real path: the healthy emulator in its own process, sequential
   `generate_content` calls on loopback through two Guards built alike except
   `metrics=`, interleaved call by call (the order alternating) so drifts hit both;
   p50 and p90 of each, and the median of the paired differences (on - off).
2. The sink's own work: in a tight loop, what a successful call emits (its
   CallUsage, and AttemptStarted and CallSucceeded only when a sink wants them)
   through a `Telemetry` with no sink, the metrics, metrics and alerts, and a plain
   function as a hook (which wants every event, scrubbed); per call, p50 over
   batches of 100.

Goal: metrics add at most 10 µs per call at p50.
"""

from __future__ import annotations

import argparse
import platform
import signal
import statistics
import subprocess
import time
from collections.abc import Callable

from google import genai
from google.genai import types

from bench.emulator_throughput import _start_emulator
from gemini_guard.guard import Guard
from gemini_guard.telemetry import AttemptStarted, CallSucceeded, CallUsage, Telemetry
from gemini_guard.telemetry.alerts import Alerts
from gemini_guard.telemetry.prometheus import PrometheusMetrics

FLASH = "gemini-2.5-flash"


def real_path(calls: int) -> dict[str, list[float]]:
    """Seconds per call without and with metrics: wall time, and the calling thread's
    CPU time (which leaves out the wait for the emulator, the noisiest part)."""
    proc, base_url = _start_emulator()
    try:
        client = genai.Client(
            api_key="bench",
            http_options=types.HttpOptions(base_url=base_url, timeout=60_000),
        )
        off = Guard(client=client, models=[FLASH], log=False)
        on = Guard(client=client, models=[FLASH], log=False, metrics=True)
        pair: list[tuple[str, Guard]] = [("off", off), ("on", on)]
        times: dict[str, list[float]] = {"off": [], "on": [], "off cpu": [], "on cpu": []}
        for _ in range(50):
            for _, guard in pair:
                guard.models.generate_content(model=FLASH, contents="warm up")
        for i in range(calls):
            for name, guard in pair if i % 2 == 0 else pair[::-1]:
                c0, t0 = time.thread_time(), time.perf_counter()
                guard.models.generate_content(model=FLASH, contents=f"prompt {i}")
                times[name].append(time.perf_counter() - t0)
                times[f"{name} cpu"].append(time.thread_time() - c0)
        off.close()
        on.close()
        client.close()
        return times
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _one_call(telemetry: Telemetry, i: int) -> None:
    # What the engine and the Guard emit for one successful call: the attempt's
    # events only when a sink wants them, its CallUsage always.
    call_id = f"{i:016x}"
    if telemetry.listening():
        telemetry.emit(
            AttemptStarted(
                timestamp=1.0, call_id=call_id, model=FLASH, attempt=1, attempt_on_model=1
            )
        )
        telemetry.emit(
            CallSucceeded(
                timestamp=1.1, call_id=call_id, model=FLASH, attempts=1, elapsed=0.1, input_tokens=9
            )
        )
    telemetry.emit(
        CallUsage(
            timestamp=1.1,
            call_id=call_id,
            model=FLASH,
            attempts=1,
            elapsed=0.1,
            input_tokens=9,
            output_tokens=20,
            thinking_tokens=0,
            cached_tokens=0,
            cost_usd=5.3e-5,
        )
    )


def sink_work(loops: int) -> dict[str, list[float]]:
    """Seconds per call of building and sending one call's events, per setup."""
    setups: dict[str, Callable[[], Telemetry]] = {
        "events, no sink": lambda: Telemetry([]),
        "events + metrics": lambda: Telemetry([PrometheusMetrics(models=[FLASH])]),
        "events + metrics + alerts": lambda: Telemetry(
            [PrometheusMetrics(models=[FLASH]), Alerts()]
        ),
        "events + a function hook": lambda: Telemetry([lambda event: None]),
    }
    built = {name: make() for name, make in setups.items()}
    out: dict[str, list[float]] = {name: [] for name in setups}
    batch = 100
    for round_ in range(loops // batch):
        for name, telemetry in built.items():
            t0 = time.perf_counter()
            for i in range(batch):
                _one_call(telemetry, round_ * batch + i)
            out[name].append((time.perf_counter() - t0) / batch)
    return out


def _us(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1e6


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench telemetry_overhead")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--loops", type=int, default=20000)
    args = parser.parse_args(argv)

    times = real_path(args.calls)
    print(f"Real path: {args.calls} calls each, healthy emulator in its own process\n")
    print("| Guard | wall p50 µs | wall p90 µs | CPU p50 µs | CPU p90 µs |")
    print("|---|---:|---:|---:|---:|")
    for name in ("off", "on"):
        wall, cpu = times[name], times[f"{name} cpu"]
        print(
            f"| metrics {name} | {_us(wall, 50):.0f} | {_us(wall, 90):.0f} "
            f"| {_us(cpu, 50):.0f} | {_us(cpu, 90):.0f} |"
        )
    for kind in ("", " cpu"):
        off, on = times[f"off{kind}"], times[f"on{kind}"]
        paired = [b - a for a, b in zip(off, on, strict=True)]
        print(
            f"\n{'CPU' if kind else 'wall'}: p50(on) - p50(off) "
            f"{_us(on, 50) - _us(off, 50):+.1f} µs; median of paired differences "
            f"{statistics.median(paired) * 1e6:+.1f} µs"
        )
    print()
    work = sink_work(args.loops)
    print(f"Sink work per successful call, {args.loops} calls, batches of 100\n")
    print("| setup | p50 µs | p90 µs |")
    print("|---|---:|---:|")
    for name, values in work.items():
        print(f"| {name} | {_us(values, 50):.2f} | {_us(values, 90):.2f} |")
    print(f"\nmachine: {platform.machine()}, Python {platform.python_version()}")
