"""Cost of one quota reservation per store, next to the floor of that store.

    python -m bench quota_acquire [--record]

- memory: `QuotaLimiter.reserve` (what the Guard pays) and the store's `acquire`,
  next to an uncontended lock round (the least any thread-safe ledger costs);
- sqlite: `reserve` next to an empty `BEGIN IMMEDIATE; COMMIT` on the same file;
- redis: `reserve` (one EVALSHA) next to a PING on the same client, both against a
  private redis-server on loopback; and the acquire script's own time inside Redis
  (SLOWLOG) next to a no-op script's, which does not depend on whether the client
  and the server share a CPU (on a small VM that alone moves a PING from about 25
  to about 100 µs);
- `confirm` (the re-check just before sending) per store, next to the same floors.

The ledger is kept in its steady state: a FakeClock moves by `60 / rpm` per
reservation and each permit is settled, so the window always holds about `rpm`
slots; 10 RPM is a free-tier window, 2000 RPM a tier-1 one (the cost must not grow
with the limit). `--record` replaces the rows of the "Quota acquire" table in
docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemini_guard.clock import FakeClock
from gemini_guard.quota import QuotaKey, QuotaLimiter
from gemini_guard.quota.ledger import Budget, Granted
from gemini_guard.quota.stores.base import Reservation

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gemini-2.5-flash"


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = statistics.median(ordered) / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99


def _time(op: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):
        op()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        op()
        samples.append(time.perf_counter_ns() - started)
    return _percentiles(samples)


def _bench_reserve(url: str, rpm: int, n: int) -> tuple[float, float]:
    clock = FakeClock()
    gate = QuotaLimiter(
        store=url,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": rpm, "tpm": rpm * 1000, "rpd": 10**9}},
        latency_allowance=0.0,
    )
    step = 60.0 / rpm
    project = f"bench-reserve-{rpm}"  # a ledger of its own: runs share one store
    samples = []
    for index in range(rpm + n):  # the first `rpm` fill the window: steady state
        started = time.perf_counter_ns()
        permit = gate.reserve(project=project, model=MODEL, tokens=100)
        if index >= rpm:
            samples.append(time.perf_counter_ns() - started)
        gate.settle(permit, sent=True)
        clock.advance(step)
    gate.close()
    return _percentiles(samples)


def _bench_confirm(url: str, rpm: int, n: int) -> tuple[float, float]:
    """`QuotaLimiter.confirm` of a permit due now (reserve and settle untimed)."""
    clock = FakeClock()
    gate = QuotaLimiter(
        store=url,
        clock=clock,
        tier="free",
        limits={MODEL: {"rpm": rpm, "tpm": rpm * 1000, "rpd": 10**9}},
        latency_allowance=0.0,
    )
    step = 60.0 / rpm
    project = f"bench-confirm-{rpm}"  # a ledger of its own: runs share one store
    samples = []
    for index in range(rpm + n):
        permit = gate.reserve(project=project, model=MODEL, tokens=100)
        started = time.perf_counter_ns()
        extra = gate.confirm(permit)
        if index >= rpm:
            samples.append(time.perf_counter_ns() - started)
        assert extra == 0.0
        gate.settle(permit, sent=True)
        clock.advance(step)
    gate.close()
    return _percentiles(samples)


def _bench_store_acquire(rpm: int, n: int) -> tuple[float, float]:
    """The memory store's acquire alone (settle untimed)."""
    from gemini_guard.quota.stores.memory import MemoryStore

    store = MemoryStore()
    key = QuotaKey("bench", MODEL)
    budget = Budget(requests=rpm, tokens=rpm * 1000)
    now = [1_767_225_600.0]
    step = 60.0 / rpm
    counter = iter(range(10**9))

    samples = []
    for index in range(rpm + n):
        slot_id = str(next(counter))
        started = time.perf_counter_ns()
        granted = store.acquire(
            key,
            slot_id=slot_id,
            budget=budget,
            tokens=100,
            now=now[0],
            allowance=0.0,
            deadline=None,
        )
        if index >= rpm:
            samples.append(time.perf_counter_ns() - started)
        assert isinstance(granted, Granted)
        reservation = Reservation(
            key=key,
            slot_id=slot_id,
            start=granted.start,
            end=granted.start,
            tokens=100,
            day=granted.day,
        )
        store.settle(reservation, sent=True, end=now[0], tokens=100)
        now[0] += step
    return _percentiles(samples)


def _inside_redis(client: Any, url: str, noop_sha: bytes) -> tuple[float, float, float, float]:
    """p50/p99 of the acquire script and of a no-op script as Redis times them."""
    from gemini_guard.quota.stores.redis import RedisStore

    acquire = RedisStore(url)._acquire.digest
    client.config_set("slowlog-max-len", 100_000)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    try:
        _bench_reserve(url, 10, 3000)
        keys = [f"gg:{{bench:{MODEL}}}:{name}".encode() for name in ("slots", "meta")]
        for _ in range(3000):
            client.execute_command("EVALSHA", noop_sha, b"2", *keys, bytes(104))
        log = client.slowlog_get(100_000)
    finally:
        client.config_set("slowlog-log-slower-than", 10_000)
    by_script: dict[bytes, list[int]] = {acquire: [], noop_sha: []}
    for entry in log:
        words = entry["command"].split(b" ")
        if words[0].upper() == b"EVALSHA" and words[1] in by_script:
            by_script[words[1]].append(entry["duration"] * 1000)  # µs -> ns
    p50, p99 = _percentiles(by_script[acquire])
    f50, f99 = _percentiles(by_script[noop_sha])
    return p50, p99, f50, f99


def _lock_floor(n: int) -> tuple[float, float]:
    lock = threading.Lock()
    table: dict[QuotaKey, int] = {QuotaKey("bench", MODEL): 0}
    key = QuotaKey("bench", MODEL)

    def op() -> None:
        with lock:
            table[key] += 1

    return _time(op, n)


def _sqlite_floor(path: Path, n: int) -> tuple[float, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")

    def op() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("COMMIT")

    result = _time(op, n)
    db.close()
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.01)
    process.kill()
    return None


def main(argv: list[str]) -> None:
    record = "--record" in argv
    rows: list[tuple[str, str, float, float, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for rpm in (10, 2000):
            p50, p99 = _bench_reserve("memory://", rpm, 20_000)
            f50, f99 = _lock_floor(20_000)
            rows.append(("memory", f"reserve, {rpm} RPM", p50, p99, "lock round", f50, f99))
        p50, p99 = _bench_store_acquire(10, 20_000)
        rows.append(("memory", "store.acquire, 10 RPM", p50, p99, "lock round", f50, f99))
        p50, p99 = _bench_confirm("memory://", 10, 20_000)
        rows.append(("memory", "confirm, 10 RPM", p50, p99, "lock round", f50, f99))

        floor = "empty BEGIN IMMEDIATE"
        f50, f99 = _sqlite_floor(workdir / "floor.db", 3000)
        for rpm in (10, 2000):
            db = workdir / f"bench-{rpm}.db"
            p50, p99 = _bench_reserve(f"sqlite:///{db}", rpm, 3000)
            rows.append(("sqlite", f"reserve, {rpm} RPM", p50, p99, floor, f50, f99))
        p50, p99 = _bench_confirm(f"sqlite:///{workdir / 'confirm.db'}", 10, 3000)
        rows.append(("sqlite", "confirm, 10 RPM", p50, p99, floor, f50, f99))

        started = _start_redis(workdir)
        if started is None:
            print("redis-server not found: Redis row skipped", file=sys.stderr)
        else:
            process, port = started
            try:
                import redis

                url = f"redis://127.0.0.1:{port}/0"
                client = redis.Redis.from_url(url)
                for rpm in (10, 2000):
                    p50, p99 = _bench_reserve(url, rpm, 5000)
                    f50, f99 = _time(client.ping, 5000)
                    rows.append(("redis", f"reserve, {rpm} RPM", p50, p99, "PING", f50, f99))
                # The client's own floor for a script call: EVALSHA of a no-op script
                # sent as the acquire's is (2 keys, 1 packed argument, as bytes): what
                # no script can go under.
                sha = client.script_load("return 1").encode()
                keys = [f"gg:{{bench:{MODEL}}}:{name}".encode() for name in ("slots", "meta")]
                blob = bytes(104) + b"bench-1|100"
                execute = client.execute_command
                p50, p99 = _time(lambda: execute("EVALSHA", sha, b"2", *keys, blob), 5000)
                f50, f99 = _time(client.ping, 5000)
                rows.append(("redis", "EVALSHA no-op, 2 keys", p50, p99, "PING", f50, f99))
                # The same two inside Redis (SLOWLOG, whole microseconds): the script's
                # own work, which does not depend on how the client and the server
                # are scheduled on the CPUs.
                p50, p99, f50, f99 = _inside_redis(client, url, sha)
                rows.append(
                    ("redis", "acquire inside Redis, 10 RPM", p50, p99, "no-op inside", f50, f99)
                )
                for rpm in (10, 2000):
                    p50, p99 = _bench_confirm(url, rpm, 3000)
                    f50, f99 = _time(client.ping, 3000)
                    rows.append(("redis", f"confirm, {rpm} RPM", p50, p99, "PING", f50, f99))
                client.close()
            finally:
                process.kill()
                process.wait()

    machine = f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}"
    today = dt.date.today().isoformat()
    header = (
        "| date | store | operation | p50 µs | p99 µs | floor | floor p50 µs | floor p99 µs "
        "| ratio p50 | machine |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {today} | {store} | {what} | {p50:.1f} | {p99:.1f} | {floor} | {f50:.1f} | "
        f"{f99:.1f} | {p50 / f50:.2f}x | {machine} |"
        for store, what, p50, p99, floor, f50, f99 in rows
    ]
    table = "\n".join([header, *lines])
    print(table)
    if record:
        _record(lines, header)


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


_SECTION = "## Quota acquire"


def _record(lines: list[str], header: str) -> None:
    """Replace the table of the "Quota acquire" section (one run, side by side)."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n"
    if _SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{_SECTION}\n\n{_INTRO}\n\n{header}\n"
    start = text.index(_SECTION)
    end = text.find("\n## ", start + len(_SECTION))
    section = text[start:] if end == -1 else text[start:end]
    kept = [line for line in section.rstrip("\n").split("\n") if not line.startswith("| 20")]
    updated = "\n".join([*kept, *lines]) + "\n"
    text = text.replace(section, updated if end == -1 else updated + "\n")
    path.write_text(text, "utf-8")
    print(f"recorded in {path}")


_INTRO = (
    "`python -m bench quota_acquire --record`: one `QuotaLimiter.reserve` per store in "
    "its steady state (the window full of settled slots), next to the floor of that "
    "store. Goals: memory p50 ≤ 10 µs; Redis p50 ≤ 1.5x a PING on the same connection."
)
