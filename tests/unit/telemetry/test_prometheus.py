"""The Prometheus sink: names, bounded labels, several processes, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gemini_guard.telemetry import (
    AttemptFailed,
    BreakerStateChanged,
    CallUsage,
)
from gemini_guard.telemetry.prometheus import OTHER, PrometheusMetrics

PRO = "gemini-2.5-pro"


def values(metrics: PrometheusMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def started(model: str) -> CallUsage:
    """A successful call of `model` (one request sent)."""
    return CallUsage(
        timestamp=1.0, call_id="c", model=model, attempts=1, elapsed=0.1, input_tokens=1,
        output_tokens=1, thinking_tokens=0, cached_tokens=0, cost_usd=None,
    )  # fmt: skip


def test_models_beyond_the_cap_are_counted_as_other() -> None:
    metrics = PrometheusMetrics(models=[PRO], max_label_values=2)
    for model in (PRO, "m-1", "m-2", "m-3", "m-4", PRO):
        metrics(started(model))
    got = values(metrics, "gemini_guard_attempts_total")
    assert got == {
        (("model", PRO),): 2,
        (("model", "m-1"),): 1,
        (("model", "m-2"),): 1,
        (("model", OTHER),): 2,
    }


def test_a_breaker_shows_the_state_it_is_in() -> None:
    metrics = PrometheusMetrics()
    for old, new in (("closed", "open"), ("open", "half_open")):
        metrics(
            BreakerStateChanged(
                timestamp=1.0, call_id="c", model=PRO, old=old, new=new, reason="r", project="p1"
            )
        )
    got = values(metrics, "gemini_guard_breaker_state")
    assert {dict(k)["state"]: v for k, v in got.items()} == {
        "closed": 0,
        "half_open": 1,
        "open": 0,
    }
    assert {dict(k)["project"] for k in got} == {"p1"}


def test_failures_are_counted_by_category_and_status_and_usage_by_kind() -> None:
    metrics = PrometheusMetrics()
    metrics(
        AttemptFailed(
            timestamp=1.0, call_id="c", model=PRO, http_status=503, grpc_status="UNAVAILABLE",
            category="overloaded", message="The model is overloaded.", attempt=1, elapsed=0.5,
        )
    )  # fmt: skip
    metrics(
        CallUsage(
            timestamp=2.0, call_id="c", model=PRO, attempts=2, elapsed=1.5,
            input_tokens=100, output_tokens=20,
            thinking_tokens=30, cached_tokens=60, cost_usd=0.0012,
        )
    )  # fmt: skip
    errors = values(metrics, "gemini_guard_attempt_errors_total")
    assert errors == {(("category", "overloaded"), ("code", "503"), ("model", PRO)): 1}
    tokens = {dict(k)["kind"]: v for k, v in values(metrics, "gemini_guard_tokens_total").items()}
    assert tokens == {"input": 100, "output": 20, "thinking": 30, "cached": 60}
    assert values(metrics, "gemini_guard_spend_usd_total") == {
        (("model", PRO),): pytest.approx(0.0012)
    }
    latency = values(metrics, "gemini_guard_request_duration_seconds_sum")
    assert latency == {(("model", PRO), ("outcome", "success")): 1.5}
    # one failed request and the successful one
    assert values(metrics, "gemini_guard_attempts_total") == {(("model", PRO),): 2}


def test_metrics_need_no_per_attempt_events() -> None:
    from gemini_guard.telemetry import LoggingSink, Telemetry

    assert not Telemetry([PrometheusMetrics(), LoggingSink("quiet-logger")]).listening()
    assert Telemetry([PrometheusMetrics(), print]).listening()


_CHILD = textwrap.dedent(
    """
    import sys
    from gemini_guard.telemetry import BreakerStateChanged, CallUsage
    from gemini_guard.telemetry.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics()
    n, state = int(sys.argv[1]), sys.argv[2]
    for i in range(n):
        metrics(CallUsage(timestamp=1.0, call_id="c", model="gemini-2.5-pro", attempts=1,
                          elapsed=0.1, input_tokens=1, output_tokens=1, thinking_tokens=0,
                          cached_tokens=0, cost_usd=None))
    metrics(BreakerStateChanged(timestamp=float(n), call_id="c", model="gemini-2.5-pro",
                                old="closed", new=state, reason="r", project="p"))
    """
)


def test_several_processes_are_merged_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    import os

    for n, state in ((3, "open"), (4, "half_open")):
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(n), state],
            env={**os.environ, **env},
            check=True,
            timeout=60,
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    reader = PrometheusMetrics()  # e.g. the gateway's /metrics handler
    assert reader.multiprocess_dir == str(shared)
    assert values(reader, "gemini_guard_attempts_total") == {(("model", PRO),): 7}
    states = {dict(k)["state"]: v for k, v in values(reader, "gemini_guard_breaker_state").items()}
    assert states["half_open"] == 1  # the most recent write wins across processes


def test_importing_gemini_guard_imports_neither_prometheus_nor_opentelemetry() -> None:
    code = (
        "import sys, gemini_guard, gemini_guard.telemetry;"
        "from gemini_guard.guard import Guard;"
        "bad = [m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry'))];"
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
