"""One worker process of the shared-quota test: plain httpx loops paced by QuotaLimiter."""

from __future__ import annotations

import threading
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier

import httpx

from gemini_guard.clock import ScaledClock
from gemini_guard.quota import QuotaLimiter
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
) -> None:
    """A process: get ready, wait for the common start, run, report the counts."""
    ready.wait()  # imported and connected
    ready.wait()  # the parent has set the start time
    begin = begin_at.value
    results.put(
        run(
            store=store,
            base_url=base_url,
            epoch=epoch,
            factor=factor,
            begin=begin,
            end=begin + minutes * 60.0,
            model=model,
            threads=threads,
        )
    )


def run(
    *,
    store: str,
    base_url: str,
    epoch: float,
    factor: float,
    begin: float,
    end: float,
    model: str,
    threads: int,
) -> dict[str, int]:
    """Send requests from `begin` to `end` (scaled wall seconds) on `threads` loops
    sharing one limiter; count the outcomes."""
    clock = ScaledClock(factor, epoch=epoch)
    gate = QuotaLimiter(store=store, clock=clock, tier="free")
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    url = f"/v1beta/models/{model}:generateContent"

    def loop(http: httpx.Client) -> None:
        mine: Counter[str] = Counter()
        clock.sleep(begin - clock.time())
        while True:
            permit = gate.reserve(project="shared", model=model, tokens=estimate_tokens(PROMPT))
            if permit.wait + clock.time() >= end:
                gate.settle(permit, sent=False)
                break
            clock.sleep(permit.wait)
            response = http.post(url, json=body)
            if response.status_code == 200:
                used = response.json()["usageMetadata"]["promptTokenCount"]
                gate.settle(permit, sent=True, input_tokens=used)
                mine["ok"] += 1
            else:
                gate.settle(permit, sent=True)
                mine["rate_limited" if response.status_code == 429 else "other"] += 1
        with lock:
            counts.update(mine)

    try:
        with httpx.Client(base_url=base_url, headers={"x-goog-api-key": "shared-key"}) as http:
            http.get("/v1beta/models")  # connect before the race starts
            loops = [threading.Thread(target=loop, args=(http,)) for _ in range(threads)]
            for thread in loops:
                thread.start()
            for thread in loops:
                thread.join()
    finally:
        gate.close()
    return {"ok": counts["ok"], "rate_limited": counts["rate_limited"], "other": counts["other"]}
