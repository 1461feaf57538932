"""Alerts fire on a bad day and stay quiet on a good one, the real SDK against the emulator.

The same scripted workload (same calls, same pace on a FakeClock) runs against the
December 2025 cut, a 503 storm, and `healthy`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from gemini_guard.clock import FakeClock, ScaledClock
from gemini_guard.emulator import serve
from gemini_guard.errors import CallFailed
from gemini_guard.guard import Guard
from gemini_guard.telemetry import Alert, Event
from gemini_guard.telemetry.alerts import Alerts, WebhookSender
from tests.support.sdk_clients import emulator_client

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
KEY = "AIzaSyALERTSTESTKEY-0123456789abcdefghi"
CALLS = 110
PACE = 8.0  # seconds between calls: 7.5 a minute, under the table's limits


def workload(scenario: str, chain: list[str], tier: str) -> tuple[list[Alert], list[Event]]:
    clock = FakeClock()
    events: list[Event] = []
    with serve(scenario, clock=clock) as server:
        alerts = Alerts()
        guard = Guard(
            client=emulator_client(server, KEY),
            models=chain,
            clock=clock,
            tier=tier,
            alerts=alerts,
            hooks=[events.append],
            log=False,
            seed=5,
        )
        for i in range(CALLS):
            with contextlib.suppress(CallFailed):
                guard.models.generate_content(model=chain[0], contents=f"item {i}")
            clock.advance(PACE)
        guard.close()
    return list(alerts.fired), events


def test_the_december_cut_raises_a_limit_cut_alert() -> None:
    fired, events = workload("dec-2025-cut", [FLASH, LITE], "free")
    rules = {a.rule for a in fired}
    assert "limit_cut" in rules, [a.what for a in fired]
    cut = next(a for a in fired if a.rule == "limit_cut")
    # the scenario cuts at 600 s: nothing could be learned before
    assert cut.since >= FakeClock().time() + 600
    assert cut.model == FLASH
    assert "below the configured limit" in cut.what
    assert "低于配置值" in cut.what_zh
    assert cut.next_step
    assert cut.next_step_zh
    # the alerts went through the Guard's telemetry like any event
    assert [e for e in events if isinstance(e, Alert)] == fired


def test_a_503_storm_raises_a_5xx_spike_and_a_breaker_alert() -> None:
    fired, _ = workload("overload", [PRO, FLASH], "tier1")
    by_rule = {a.rule: a for a in fired}
    assert {"5xx_spike", "breaker_open"} <= set(by_rule), [a.what for a in fired]
    spike = by_rule["5xx_spike"]
    assert spike.model == PRO
    assert spike.severity == "critical"
    assert "5xx" in spike.what
    assert "5xx" in spike.what_zh
    assert "status" in spike.next_step
    # the storm starts 30 s in: the alert says since when
    assert spike.since >= FakeClock().time() + 30
    assert by_rule["breaker_open"].model == PRO


@pytest.mark.parametrize(("chain", "tier"), [([FLASH, LITE], "free"), ([PRO, FLASH], "tier1")])
def test_healthy_raises_nothing_over_the_same_calls(chain: list[str], tier: str) -> None:
    fired, events = workload("healthy", chain, tier)
    assert fired == []
    assert sum(1 for e in events if e.kind == "call_succeeded") == CALLS


class _Receiver(BaseHTTPRequestHandler):
    fail_first: int = 0
    got: list[dict[str, Any]] = []  # noqa: RUF012 - set per test
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        with self.lock:
            if type(self).fail_first > 0:
                type(self).fail_first -= 1
                self.send_response(503)
                self.end_headers()
                return
            type(self).got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"fail_first": 2, "got": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_gets_each_alert_after_retries_without_blocking_calls(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    clock = FakeClock()
    # Retries wait on their own clock: a ScaledClock makes the 1 s, 2 s backoff quick.
    sender = WebhookSender(url, clock=ScaledClock(1000), backoff=1.0)
    alerts = Alerts(webhook=sender)
    with serve("overload", clock=clock) as server:
        guard = Guard(
            client=emulator_client(server, KEY),
            models=[PRO, FLASH],
            clock=clock,
            tier="tier1",
            alerts=alerts,
            log=False,
            seed=5,
        )
        for i in range(60):
            with contextlib.suppress(CallFailed):
                guard.models.generate_content(model=PRO, contents=f"item {i}")
            clock.advance(PACE)
        guard.close()
    sender.close()
    assert alerts.fired
    assert [p["alert"] for p in handler.got] == [a.rule for a in alerts.fired]
    first = handler.got[0]
    assert set(first) >= {"alert", "severity", "model", "since", "what", "what_zh", "next_step"}
    assert first["what"] == alerts.fired[0].what
    assert KEY not in json.dumps(handler.got)
    assert sender.sent == len(alerts.fired)
    assert sender.failed == 0  # two 503s, then delivered on the third try


def test_a_dead_webhook_never_blocks_and_drops_beyond_its_queue() -> None:
    # Nothing listens on port 9 of loopback: every POST fails at once.
    sender = WebhookSender("http://127.0.0.1:9/x", clock=ScaledClock(1e6), max_queue=2)
    alert = Alert(
        timestamp=1.0, call_id="", model=PRO, rule="breaker_open", severity="warning",
        since=1.0, what="w", next_step="n", what_zh="w", next_step_zh="n",
    )  # fmt: skip
    from gemini_guard.telemetry.alerts import payload_of

    for _ in range(50):
        sender.send(payload_of(alert))  # returns at once whatever the receiver does
    sender.close()
    assert sender.sent == 0
    assert sender.dropped > 0
    assert sender.failed + sender.dropped == 50
