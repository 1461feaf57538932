"""Fault injection: each fault against real processes, with what it cost.

    python -m bench faults                 # every fault, full size
    python -m bench faults --quick         # the sizes the test suite uses
    python -m bench faults redis disk_full # some of them

For each fault: how many times it was injected, requests attempted (as the emulator
counted them), answers lost (an input with no result, a call with neither an answer
nor a clear error), doubled (an input with two output lines, a call sent twice), the
worst latency a call gained from the fault over the healthy median, and the message
the user saw. tests/faults/test_fault_suite.py runs the same functions with --quick
sizes and pins the outcomes (nothing lost, nothing doubled, a clear message).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemini_guard.emulator import EmulatorServer, serve

__all__ = ["FAULTS", "FaultFigures", "main"]

CLI = (sys.executable, "-c", "from gemini_guard.cli import main; main()")
FLASH = "gemini-2.5-flash"


@dataclass(frozen=True, slots=True)
class FaultFigures:
    fault: str
    injected: int
    attempted: int  # requests the emulator received
    answered: int  # inputs (or calls) that ended with an answer
    lost: int  # inputs without a result line / calls with neither answer nor clear error
    doubled: int  # inputs with two lines / calls whose request was sent twice
    worst_added_ms: float | None  # None: not a per-call latency (a process restart)
    message: str  # what the user was told
    notes: tuple[str, ...] = field(default_factory=tuple)

    def row(self) -> str:
        worst = "n/a" if self.worst_added_ms is None else f"{self.worst_added_ms:.0f}"
        return (
            f"| {self.fault} | {self.injected} | {self.attempted} | {self.answered} | "
            f"{self.lost} | {self.doubled} | {worst} | {self.message[:200]} |"
        )


def _steady(latency: float = 2.0, **extra: Any) -> dict[str, Any]:
    return {
        "name": "faults",
        "seed": 7,
        "quotas": False,
        "default_tier": "tier1",
        "latency": [{"distribution": "fixed", "seconds": latency}],
        **extra,
    }


def _env(server: EmulatorServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GUARD_")}
    env.pop("GOOGLE_API_KEY", None)
    env.update(GEMINI_API_KEY="k-batch-5d2b8e6a", GOOGLE_GEMINI_BASE_URL=server.base_url)
    return env


def _input(path: Path, n: int) -> list[str]:
    ids = [f"item-{i}" for i in range(n)]
    path.write_text("".join(json.dumps({"id": i, "prompt": f"Summarise {i}."}) + "\n" for i in ids))
    return ids


def _batch(source: Path, out: Path, *extra: str) -> list[str]:
    return [*CLI, "batch", str(source), "-o", str(out), "--tier", "tier1", *extra]


def _requests(server: EmulatorServer) -> int:
    return int(server.emulator.stats()["totals"]["requests"])


def _output_counts(out: Path, ids: list[str]) -> tuple[int, int, int]:
    """(answered, lost, doubled) of a batch output against its input ids."""
    seen = Counter(json.loads(line)["id"] for line in out.read_text().splitlines())
    answered = sum(1 for i in ids if seen[i] >= 1)
    return answered, sum(1 for i in ids if seen[i] == 0), sum(n - 1 for n in seen.values() if n > 1)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- kill -9 of a batch run ------------------------------------------------------------


def kill9_batch(work: Path, *, kills: int = 8, items: int = 300, seed: int = 1) -> FaultFigures:
    """`batch` killed with SIGKILL at random moments, then run to the end."""
    from gemini_guard.clock import ScaledClock

    rng = random.Random(seed)
    source, out = work / "kill9.jsonl", work / "kill9.out.jsonl"
    ids = _input(source, items)
    injected = 0
    with serve(_steady(), clock=ScaledClock(50)) as server:
        while injected < kills:
            proc = subprocess.Popen(
                _batch(source, out, "--concurrency", "8"),
                env=_env(server),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if injected % 2:  # any moment: start-up, repair, mid-run
                deadline = time.monotonic() + rng.uniform(0.3, 1.5)
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.01)
            else:  # while results stream in: often between a commit and its line
                before = out.stat().st_size if out.exists() else 0
                deadline = time.monotonic() + 30
                while proc.poll() is None and time.monotonic() < deadline:
                    if out.exists() and out.stat().st_size > before:
                        break
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.12))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            injected += 1
        final = subprocess.run(
            _batch(source, out), env=_env(server), capture_output=True, text=True, timeout=300
        )
        attempted = _requests(server)
    answered, lost, doubled = _output_counts(out, ids)
    return FaultFigures(
        "kill -9 of batch",
        injected,
        attempted,
        answered,
        lost if final.returncode == 0 else lost + 1,
        doubled,
        None,
        f"resumed with the same command (exit {final.returncode})",
        (f"{attempted - items} request(s) in flight at a kill were sent again",),
    )


# -- disk full under the batch output --------------------------------------------------


def _file_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def disk_full_batch(work: Path, *, items: int = 300, limit: int = 96 * 1024) -> FaultFigures:
    """`batch` under a file-size limit (RLIMIT_FSIZE, like `ulimit -f`): the first write
    past it fails as a full disk would; then the same command without the limit."""
    from gemini_guard.clock import ScaledClock

    source, out = work / "full.jsonl", work / "full.out.jsonl"
    ids = _input(source, items)
    with serve(_steady(), clock=ScaledClock(50)) as server:
        full = subprocess.run(
            _batch(source, out, "--concurrency", "8"),
            env=_env(server),
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=_file_limit(limit),  # no threads in this process's child yet
        )
        resumed = subprocess.run(
            _batch(source, out), env=_env(server), capture_output=True, text=True, timeout=300
        )
        attempted = _requests(server)
    answered, lost, doubled = _output_counts(out, ids)
    clear = full.returncode == 1 and "Traceback" not in full.stderr
    return FaultFigures(
        "disk full (RLIMIT_FSIZE) on batch",
        1 if full.returncode != 0 else 0,
        attempted,
        answered,
        lost if resumed.returncode == 0 else lost + 1,
        doubled,
        None,
        _last_line(full.stderr) if clear else f"UNCLEAR (exit {full.returncode}): {full.stderr}",
        (f"{attempted - items} request(s) in flight when the write failed were sent again",),
    )


# -- the upstream cuts a 200 mid-body --------------------------------------------------


def drop_mid_body(work: Path, *, calls: int = 100, probability: float = 0.15) -> FaultFigures:
    """Guard calls while the upstream cuts `probability` of its 200s halfway through.
    The breaker and the retry budget are relaxed (a drop rate this high would open the
    breaker, by design) so each call retries until answered: what is measured is
    whether a cut answer is ever taken for a whole one, or a call answered twice."""
    from google import genai
    from google.genai import types

    from gemini_guard.guard import Guard
    from gemini_guard.policies import BreakerPolicy, RetryBudget, RetryPolicy

    scenario = _steady(
        0.0,
        faults=[{"kind": "drop_mid_body", "probability": probability}],
    )
    latencies: list[float] = []
    failures: list[str] = []
    answered = 0
    with serve(scenario) as server:
        client = genai.Client(
            api_key="k-drop-3f9a1c7e", http_options=types.HttpOptions(base_url=server.base_url)
        )
        guard = Guard(
            client=client,
            models=[FLASH],
            retry=RetryPolicy(base=0.05, cap=0.2, max_retries=8, fallback_after=9),
            breaker=BreakerPolicy(failure_threshold=1000, min_calls=100_000),
            budget=RetryBudget(max_tokens=1000.0, token_ratio=1.0),
            log=False,
        )
        try:
            for n in range(calls):
                started = time.monotonic()
                try:
                    guard.models.generate_content(model=FLASH, contents=f"question {n}")
                    answered += 1
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.monotonic() - started)
        finally:
            guard.close()
            client.close()
        stats = server.emulator.stats()["totals"]
    dropped = int(stats["rejected"].get("dropped_mid_body", 0))
    attempted = int(stats["requests"])
    baseline = statistics.median(latencies)
    return FaultFigures(
        "upstream drops mid-body",
        dropped,
        attempted,
        answered,
        calls - answered - len(failures),
        max(0, attempted - dropped - answered),  # whole answers beyond one per call
        (max(latencies) - baseline) * 1000,
        "retried as a dropped connection; every call answered" if not failures else failures[0],
        ("a cut answer was paid for upstream and asked again: the request after a drop",),
    )


# -- Redis paused and killed under a 4-process quota run ------------------------------

_WORKER = r"""
import json, sys, time
from google import genai
from google.genai import types
from gemini_guard.guard import Guard
from gemini_guard.quota import QuotaLimiter

base_url, store, calls, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
http = types.HttpOptions(base_url=base_url)
client = genai.Client(api_key="k-quota-8e4d-" + name, http_options=http)
limiter = QuotaLimiter(store=store, tier="tier1")
guard = Guard(client=client, quota=limiter, models=["gemini-2.5-flash"], log=False)
records = []
for n in range(calls):
    started = time.time()
    try:
        guard.models.generate_content(model="gemini-2.5-flash", contents=f"{name} {n}")
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    records.append([started, time.time() - started, error])
print(json.dumps({"records": records, "degraded": limiter.store.degraded}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _redis(work: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield proc, f"redis://127.0.0.1:{port}/0"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()


def redis_quota(
    work: Path, *, processes: int = 4, calls: int = 60, pause: float = 1.0
) -> list[FaultFigures]:
    """Four processes pacing through one Redis; it is frozen (SIGSTOP) for `pause`
    seconds a third of the way, and killed two thirds of the way."""
    total = processes * calls
    with _redis(work) as (redis_proc, url), serve(_steady(0.05)) as server:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, server.base_url, url, str(calls), f"w{n}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(processes)
        ]

        def wait_for(count: int) -> None:
            while _requests(server) < count and any(w.poll() is None for w in workers):
                time.sleep(0.005)

        wait_for(total // 3)
        os.kill(redis_proc.pid, signal.SIGSTOP)
        paused_at = time.time()
        time.sleep(pause)
        os.kill(redis_proc.pid, signal.SIGCONT)
        resumed_at = time.time()
        wait_for(2 * total // 3)
        redis_proc.kill()
        killed_at = time.time()
        outputs = [w.communicate(timeout=300) for w in workers]
        attempted = _requests(server)
    records: list[tuple[float, float, str | None]] = []
    for stdout, stderr in outputs:
        if not stdout.strip():
            raise RuntimeError(f"a quota worker died: {stderr}")
        records += [(float(s), float(d), e) for s, d, e in json.loads(stdout)["records"]]
    healthy = [d for s, d, e in records if s + d < paused_at and e is None]
    baseline = statistics.median(healthy) if healthy else 0.0
    errors = [e for _, _, e in records if e is not None]
    answered = total - len(errors)

    def worst(start: float, end: float) -> float:
        hit = [d for s, d, _ in records if s < end and s + d > start]
        return (max(hit) - baseline) * 1000 if hit else 0.0

    doubled = max(0, attempted - total)
    message = "degraded to the local ledger (StoreDegraded); calls went on"
    if errors:
        message = errors[0]
    return [
        FaultFigures(
            f"Redis paused {pause:g}s ({processes} processes)",
            1,
            attempted,
            answered,
            len(errors),
            doubled,
            worst(paused_at, resumed_at + 0.5),
            message,
        ),
        FaultFigures(
            f"Redis killed ({processes} processes)",
            1,
            attempted,
            answered,
            len(errors),
            doubled,
            worst(killed_at, killed_at + 5.0),
            message,
        ),
    ]


# -- a SQLite state file made read-only, then corrupted, under load -------------------


def sqlite_state(work: Path, *, threads: int = 4, calls_per_phase: int = 40) -> list[FaultFigures]:
    """Threads calling through a Guard whose quota ledger is a SQLite file; the file is
    made read-only, then pages of it are overwritten, while the calls go on; then a
    Guard opened with ?on_corrupt=reset starts afresh."""
    from google import genai
    from google.genai import types

    from gemini_guard.errors import StoreError
    from gemini_guard.guard import Guard
    from gemini_guard.quota import QuotaLimiter

    state = work / "state.db"
    results: list[FaultFigures] = []
    with serve(_steady(0.01)) as server:

        def phase(name: str, guard: Guard, fault: Callable[[], int]) -> FaultFigures:
            before = _requests(server)
            outcomes: list[tuple[float, str | None]] = []
            lock = threading.Lock()
            start = threading.Event()

            def run(worker: int) -> None:
                start.wait()
                for n in range(calls_per_phase // threads):
                    began = time.monotonic()
                    try:
                        guard.models.generate_content(model=FLASH, contents=f"{name} {worker} {n}")
                        error = None
                    except StoreError as exc:
                        error = str(exc)
                    except Exception as exc:  # unclear: counted as lost
                        error = f"UNCLEAR {type(exc).__name__}: {exc}"
                    with lock:
                        outcomes.append((time.monotonic() - began, error))

            pool = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
            for t in pool:
                t.start()
            start.set()
            # Strike once a quarter of the calls are done: under load, not before or after.
            while len(outcomes) < calls_per_phase // 4 and any(t.is_alive() for t in pool):
                time.sleep(0.001)
            injected = fault()
            for t in pool:
                t.join()
            attempted = _requests(server) - before
            answered = sum(1 for _, e in outcomes if e is None)
            clear = [e for _, e in outcomes if e is not None and str(state) in e]
            unclear = [e for _, e in outcomes if e is not None and str(state) not in e]
            durations = sorted(d for d, _ in outcomes)
            return FaultFigures(
                name,
                injected,
                attempted,
                answered,
                len(unclear),
                max(0, attempted - len(outcomes)),
                (durations[-1] - statistics.median(durations)) * 1000 if durations else None,
                (clear[0] if clear else "no call failed") if not unclear else unclear[0],
                (f"{len(clear)} call(s) refused with a clear error",),
            )

        def make_guard(url: str) -> tuple[Guard, genai.Client]:
            client = genai.Client(
                api_key="k-sqlite-7c1e9a4f",
                http_options=types.HttpOptions(base_url=server.base_url),
            )
            limiter = QuotaLimiter(store=url, tier="tier1")
            return Guard(client=client, quota=limiter, models=[FLASH], log=False), client

        guard, client = make_guard(f"sqlite:///{state}")
        try:
            if _file_modes_apply(work):

                def read_only() -> int:
                    state.chmod(0o444)
                    for side in ("-wal", "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            state.with_name(state.name + side).chmod(0o444)
                    return 1

                results.append(phase("SQLite state made read-only", guard, read_only))
                for path in (state, *(state.with_name(state.name + s) for s in ("-wal", "-shm"))):
                    with contextlib.suppress(FileNotFoundError):
                        path.chmod(0o644)

            def corrupt() -> int:
                with sqlite3.connect(state) as db:  # a checkpoint puts every page in the file
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                data = bytearray(state.read_bytes())
                data[0:100] = b"\x00garbage" * 12 + b"\x00" * 4  # the header: not a database
                state.write_bytes(bytes(data))
                return 1

            results.append(phase("SQLite state corrupted", guard, corrupt))
        finally:
            guard.close()
            client.close()

        # The opt-in recovery: the next start moves the damaged file aside.
        started = time.monotonic()
        recovered, client = make_guard(f"sqlite:///{state}?on_corrupt=reset")
        try:
            results.append(
                phase(
                    "SQLite state reopened with on_corrupt=reset",
                    recovered,
                    lambda: 0,
                )
            )
        finally:
            recovered.close()
            client.close()
        del started
    return results


# -- the runner --------------------------------------------------------------------------

FAULTS: dict[str, Callable[..., FaultFigures | list[FaultFigures]]] = {
    "kill9": kill9_batch,
    "disk_full": disk_full_batch,
    "drop": drop_mid_body,
    "redis": redis_quota,
    "sqlite": sqlite_state,
}

QUICK: dict[str, dict[str, Any]] = {
    "kill9": {"kills": 3, "items": 120},
    "disk_full": {"items": 200},
    "drop": {"calls": 25},
    "redis": {"calls": 30, "pause": 0.6},
    "sqlite": {"calls_per_phase": 24},
}


def _file_modes_apply(directory: Path) -> bool:
    """Whether a read-only file refuses this process's writes: not for root with its
    usual capabilities (CAP_DAC_OVERRIDE), so the read-only phase is run only where it
    can mean something (a user, or root with that capability dropped)."""
    probe = directory / ".file-modes-probe"
    probe.write_bytes(b"")
    probe.chmod(0o444)
    try:
        with probe.open("ab"):
            return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


def run(name: str, work: Path, *, quick: bool = False) -> list[FaultFigures]:
    figures = FAULTS[name](work, **(QUICK[name] if quick else {}))
    return figures if isinstance(figures, list) else [figures]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench faults")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(FAULTS))
    parser.add_argument("--quick", action="store_true", help="the test suite's sizes")
    args = parser.parse_args(argv)
    names = args.names or list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    print(
        "| fault | injected | requests attempted | answered | lost | doubled | "
        "worst added latency (ms) | message |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"gg-fault-{name}-") as tmp:
            for figures in run(name, Path(tmp), quick=args.quick):
                print(figures.row(), flush=True)
                for note in figures.notes:
                    print(f"|  | note: {note} | | | | | | |", flush=True)
