"""One worker process of the shared-quota test: plain httpx loops paced by QuotaLimiter."""

from __future__ import annotations

import threading
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier

import httpx

from gemini_guard.clock import ScaledClock
from gemini_guard.diagnosis import diagnose_http
from gemini_guard.quota import LimitLearned, QuotaLimiter
from gemini_guard.tokens import estimate_tokens

PROMPT = "Say hello in one word."


def main(
    results: Queue[dict[str, int]],
    ready: Barrier,
    begin_at: Synchronized[float],
    *,
    store: str,
    base_url: str,
    epoch: float,
    factor: float,
    minutes: float,
    model: str,
    threads: int,
    rpm: int | None = None,
) -> None:
    """A process: get ready, wait for the common start, run, report the counts.

    `rpm`: the limit this process is configured with, when it is not the table's
    (the server may enforce less: then the 429s must teach every process, once).

    Everything slow (imports, connections to the store and the emulator) happens
    before the start: at ScaledClock(60) a second of warming up is a lost minute.
    """
    clock = ScaledClock(factor, epoch=epoch)
    learned: list[LimitLearned] = []

    def on_event(event: object) -> None:
        if isinstance(event, LimitLearned):
            learned.append(event)

    gate = QuotaLimiter(
        store=store,
        clock=clock,
        tier="free",
        limits=None if rpm is None else {model: {"rpm": rpm}},
        on_event=on_event,
    )
    try:
        gate.usage("shared", model)  # connects to the store (and creates its tables)
        estimate_tokens(PROMPT)
        with httpx.Client(base_url=base_url, headers={"x-goog-api-key": "shared-key"}) as http:
            http.get("/v1beta/models")  # connects to the emulator
            ready.wait()  # imported and connected
            ready.wait()  # the parent has set the start time
            begin = begin_at.value
            counts = run(
                gate,
                http,
                clock=clock,
                begin=begin,
                end=begin + minutes * 60.0,
                model=model,
                threads=threads,
            )
    finally:
        gate.close()
    counts["learned"] = len(learned)
    counts["learned_rpm"] = min((e.enforced for e in learned), default=0)
    results.put(counts)


def run(
    gate: QuotaLimiter,
    http: httpx.Client,
    *,
    clock: ScaledClock,
    begin: float,
    end: float,
    model: str,
    threads: int,
) -> dict[str, int]:
    """Send requests from `begin` to `end` (scaled wall seconds) on `threads` loops
    sharing one limiter; count the outcomes."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    url = f"/v1beta/models/{model}:generateContent"
    tokens = estimate_tokens(PROMPT)

    def loop() -> None:
        mine: Counter[str] = Counter()
        clock.sleep(begin - clock.time())
        while True:
            permit = gate.reserve(project="shared", model=model, tokens=tokens)
            if permit.wait + clock.time() >= end:
                gate.settle(permit, sent=False)
                break
            clock.sleep(permit.wait)
            # Just before sending, check the plan against what was really sent.
            while (extra := gate.confirm(permit)) > 0:
                clock.sleep(extra)
            response = http.post(url, json=body)
            if response.status_code == 200:
                used = response.json()["usageMetadata"]["promptTokenCount"]
                gate.settle(permit, sent=True, input_tokens=used)
                mine["ok"] += 1
            else:
                # The server's answer, diagnosed: a 429 teaches the enforced limit.
                diagnosis = diagnose_http(response.status_code, response.content)
                gate.settle(permit, sent=True, diagnosis=diagnosis)
                if response.status_code == 429:
                    mine["rate_limited"] += 1
                    # When: the 429s must stop once the limit is learned.
                    mine["last_429_at"] = max(mine["last_429_at"], int(clock.time() - begin))
                else:
                    mine["other"] += 1
        with lock:
            counts.update(mine)

    loops = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in loops:
        thread.start()
    for thread in loops:
        thread.join()
    return {
        "ok": counts["ok"],
        "rate_limited": counts["rate_limited"],
        "other": counts["other"],
        "last_429_at": counts["last_429_at"],
    }
