"""docs/grafana-dashboard.json queries only metrics the sink exposes, in valid PromQL."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from google import genai

from gemini_guard.clock import FakeClock
from gemini_guard.guard import Guard
from gemini_guard.telemetry import (
    Alert,
    AttemptFailed,
    BreakerStateChanged,
    CallFailedEvent,
    CallUsage,
    FallbackTaken,
    ModelSkipped,
    QuotaNotice,
    QuotaWaited,
    RetryScheduled,
)
from gemini_guard.telemetry.prometheus import PrometheusMetrics
from tests.support.binaries import require_binary

DASHBOARD = Path(__file__).parents[3] / "docs" / "grafana-dashboard.json"
PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def exposed_names() -> set[str]:
    metrics = PrometheusMetrics()
    client = genai.Client(api_key="not-used-no-request-is-sent")
    guard = Guard(
        client=client, models=[PRO, FLASH], clock=FakeClock(), metrics=metrics,
        cache="memory://", tier="free", log=False,
    )  # fmt: skip
    common: dict[str, Any] = {"timestamp": 1.0, "call_id": "c", "model": PRO}
    failure: dict[str, Any] = {
        **common, "http_status": 503, "grpc_status": None, "category": "overloaded",
        "message": "m",
    }  # fmt: skip
    for event in (
        CallUsage(
            **common,
            attempts=1,
            elapsed=1.0,
            input_tokens=1,
            output_tokens=1,
            thinking_tokens=1,
            cached_tokens=1,
            cost_usd=0.1,
        ),
        AttemptFailed(**failure, attempt=1, elapsed=0.1),
        RetryScheduled(**failure, attempt=1, reason="r", delay=1.0),
        FallbackTaken(**failure, reason="r", to_model=FLASH),
        CallFailedEvent(**failure, error="E", reason="r", attempts=1, elapsed=1.0),
        QuotaWaited(**common, project="default", wait=1.0),
        ModelSkipped(**common, reason="breaker_open"),
        BreakerStateChanged(**common, old="closed", new="open", reason="r"),
        QuotaNotice(**common, notice="limit_learned", message="m"),
        Alert(
            **common,
            rule="r",
            severity="warning",
            since=1.0,
            what="w",
            next_step="n",
            what_zh="w",
            next_step_zh="n",
        ),
    ):
        metrics(event)
    text = metrics.exposition().decode()
    guard.close()
    client.close()
    return set(re.findall(r"^(gemini_guard_\w+?)(?:\{| )", text, flags=re.MULTILINE))


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    exposed = exposed_names()
    queried = {name for expr in expressions() for name in re.findall(r"gemini_guard_\w+", expr)}
    assert queried, "the dashboard has no queries"
    assert queried <= exposed, sorted(queried - exposed)


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    promtool = require_binary("promtool", why="to check the dashboard's PromQL")
    rules = []
    for i, expr in enumerate(expressions()):
        concrete = expr.replace("$__rate_interval", "5m").replace("$model", ".*")
        rules.append({"record": f"dashboard:query_{i}", "expr": concrete})
    path = tmp_path / "rules.yml"
    # JSON is YAML: promtool reads it as a rules file.
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
