"""The [telemetry] section turns on metrics, alerts, a webhook and a daily budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from google import genai

from gemini_guard.config import load_config
from gemini_guard.errors import ConfigError
from gemini_guard.guard import guard_from_config
from gemini_guard.telemetry.alerts import Alerts
from gemini_guard.telemetry.prometheus import PrometheusMetrics


def test_the_section_builds_a_guard_with_metrics_alerts_and_a_budget(tmp_path: Path) -> None:
    path = tmp_path / "gemini-guard.toml"
    path.write_text(
        'models = ["gemini-2.5-flash"]\n'
        "[telemetry]\nlog = false\nmetrics = true\n"
        'webhook = "http://127.0.0.1:9/hook"\ndaily_budget_usd = 5\n'
    )
    client = genai.Client(api_key="not-used-no-request-is-sent")
    with guard_from_config(load_config(path, env={}), client=client) as guard:
        assert isinstance(guard.metrics, PrometheusMetrics)
        assert isinstance(guard.alerts, Alerts)
        assert guard.alerts.webhook is not None
        assert "127.0.0.1" in repr(guard.alerts.webhook)
        assert guard.spend().budget_usd == 5
        assert b"gemini_guard_quota_requests" in guard.metrics.exposition()
    client.close()


def test_by_default_there_are_no_metrics_alerts_or_budget() -> None:
    client = genai.Client(api_key="not-used-no-request-is-sent")
    with guard_from_config(load_config(env={}), client=client) as guard:
        assert guard.metrics is None
        assert guard.alerts is None
        assert guard.spend().budget_usd is None
    client.close()


@pytest.mark.parametrize(
    ("line", "field"),
    [("daily_budget_usd = 0", "daily_budget_usd"), ('webhook = "ftp://x"', "webhook")],
)
def test_bad_values_name_the_field(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "gemini-guard.toml"
    path.write_text(f"[telemetry]\n{line}\n")
    with pytest.raises(ConfigError, match=field):
        load_config(path, env={})
