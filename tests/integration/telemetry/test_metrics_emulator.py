"""Prometheus metrics after a scripted emulator run, checked against what the emulator saw.

The real SDK through a Guard, the emulator on a loopback port, a FakeClock. Each
counter is compared with the emulator's own `/_emulator/stats`: the requests it
received, the 429s and 503s it answered, and the calls that fell back to flash.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gemini_guard.clock import FakeClock
from gemini_guard.emulator import EmulatorServer, Scenario, serve
from gemini_guard.errors import CallFailed
from gemini_guard.guard import Guard
from gemini_guard.policies import BreakerPolicy
from gemini_guard.telemetry.prometheus import PrometheusMetrics
from tests.support.binaries import require_binary
from tests.support.sdk_clients import emulator_client

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
KEY = "AIzaSyMETRICSTESTKEY-0123456789abcdefgh"
CALLS = 40

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(found: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for (n, lbls), value in found.items()
        if n == name and all(dict(lbls).get(k) == v for k, v in labels.items())
    )


def emulator_stats(server: EmulatorServer) -> dict[str, dict[str, object]]:
    """Per model, summed over projects, from the emulator's HTTP stats endpoint."""
    body = httpx.get(f"{server.base_url}/_emulator/stats").json()
    out: dict[str, dict[str, object]] = {}
    for models in body["projects"].values():
        for model, cell in models.items():
            into = out.setdefault(model, {"requests": 0, "admitted": 0, "rejected": {}})
            into["requests"] += cell["requests"]
            into["admitted"] += cell["admitted"]
            rejected: dict[str, int] = into["rejected"]  # type: ignore[assignment]
            for reason, n in cell["rejected"].items():
                rejected[reason] = rejected.get(reason, 0) + n
    return out


@pytest.fixture
def bad_day() -> Iterator[tuple[EmulatorServer, FakeClock]]:
    # pro is overloaded half the time and allows 5 requests a minute (free tier);
    # flash 4: the run meets 503s, fallbacks and 429s.
    clock = FakeClock()
    scenario = Scenario(
        name="metrics-day",
        seed=7,
        default_tier="free",
        limits={FLASH: {"free": {"rpm": 4}}},  # type: ignore[dict-item]
        faults=({"kind": "overloaded", "models": (PRO,), "probability": 0.5},),  # type: ignore[arg-type]
    )
    with serve(scenario, clock=clock) as server:
        yield server, clock


def run(server: EmulatorServer, clock: FakeClock, metrics: PrometheusMetrics) -> Guard:
    guard = Guard(
        client=emulator_client(server, KEY),
        models=[PRO, FLASH],
        clock=clock,
        metrics=metrics,
        # tier "auto": flash's 4 RPM is learned from the first 429s, as in production
        breaker=BreakerPolicy(failure_threshold=1000, min_calls=1000),
        log=False,
        seed=3,
    )
    for i in range(CALLS):
        with contextlib.suppress(CallFailed):
            guard.models.generate_content(model=PRO, contents=f"question {i}")
        clock.advance(2.0)
    return guard


def test_counters_match_what_the_emulator_saw(
    bad_day: tuple[EmulatorServer, FakeClock],
) -> None:
    server, clock = bad_day
    metrics = PrometheusMetrics()
    guard = run(server, clock, metrics)
    found = samples(metrics.exposition().decode())
    seen = emulator_stats(server)
    pro, flash = seen[PRO], seen[FLASH]
    pro_rejected: dict[str, int] = pro["rejected"]  # type: ignore[assignment]
    flash_rejected: dict[str, int] = flash["rejected"]  # type: ignore[assignment]

    # every request the emulator received was counted as an attempt, per model
    assert total(found, "gemini_guard_attempts_total", model=PRO) == pro["requests"]
    assert total(found, "gemini_guard_attempts_total", model=FLASH) == flash["requests"]
    # its 503s and 429s, by HTTP status
    overloaded = pro_rejected.get("overloaded", 0)
    assert overloaded > 5, "the scenario should have overloaded pro"
    assert total(found, "gemini_guard_attempt_errors_total", model=PRO, code="503") == overloaded
    assert total(found, "gemini_guard_attempt_errors_total", code="429") == sum(
        n for reason, n in flash_rejected.items() if reason in ("rpm", "tpm", "rpd")
    ) + sum(n for reason, n in pro_rejected.items() if reason in ("rpm", "tpm", "rpd"))
    assert total(found, "gemini_guard_attempt_errors_total", code="429") > 0
    # every call starts on pro (the breaker is kept shut) and a call pro did not serve
    # fell back to flash once: the fallbacks are the answers flash gave, and each took
    # at least one 503 from pro
    fell = total(found, "gemini_guard_fallbacks_total", from_model=PRO, to_model=FLASH)
    assert fell == int(flash["admitted"])  # type: ignore[call-overload]
    assert 0 < fell <= overloaded
    # calls: every call ended in a success the emulator admitted
    admitted = int(pro["admitted"]) + int(flash["admitted"])  # type: ignore[call-overload]
    assert total(found, "gemini_guard_requests_total", outcome="success") == admitted == CALLS
    assert total(found, "gemini_guard_request_duration_seconds_count") == CALLS
    # tokens billed as the emulator counted them
    body = httpx.get(f"{server.base_url}/_emulator/stats").json()
    assert (
        total(found, "gemini_guard_tokens_total", kind="output") == body["totals"]["output_tokens"]
    )
    assert total(found, "gemini_guard_spend_usd_total") == pytest.approx(guard.spend().total_usd)
    assert guard.spend().total_usd > 0
    # pro is retried before the call falls back, so pro meets its free-tier quota (5
    # RPM): the tier its 429s reveal shows in the quota gauges
    assert sum(n for reason, n in pro_rejected.items() if reason == "rpm") > 0
    assert total(found, "gemini_guard_quota_requests_limit", model=PRO, window="minute") == 5
    guard.close()


def test_no_label_carries_a_key_or_a_prompt(bad_day: tuple[EmulatorServer, FakeClock]) -> None:
    server, clock = bad_day
    metrics = PrometheusMetrics()
    run(server, clock, metrics).close()
    text = metrics.exposition().decode()
    assert KEY not in text
    assert KEY[:10] not in text
    assert "question" not in text
    labels = {
        (name, value)
        for (_, lbls) in samples(text)
        for name, value in lbls
        if name in ("model", "from_model", "to_model")
    }
    assert {v for _, v in labels} <= {PRO, FLASH, "none"}


def test_promtool_accepts_the_output(
    bad_day: tuple[EmulatorServer, FakeClock], tmp_path: Path
) -> None:
    promtool = require_binary("promtool", why="to check the metrics exposition format")
    server, clock = bad_day
    metrics = PrometheusMetrics()
    run(server, clock, metrics).close()
    exposed = metrics.exposition()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposed, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
