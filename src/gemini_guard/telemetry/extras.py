"""Plugging metrics and alerts into a Guard: the sinks that also read its state.

Both need the Guard itself besides its events (the metrics read its quota ledgers
and cache when scraped; the alerts read its daily quota and raise events back into
its telemetry), so they are attached after the Guard is built rather than passed as
plain hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemini_guard.telemetry.alerts import Alerts
    from gemini_guard.telemetry.prometheus import PrometheusMetrics

__all__ = ["plug_in"]


def plug_in(
    guard: Any, *, metrics: PrometheusMetrics | bool, alerts: Alerts | bool
) -> tuple[PrometheusMetrics | None, Alerts | None, list[Any]]:
    """Attach `metrics` and `alerts` (True: new ones) to `guard`; returns them and
    what the Guard made itself and must close."""
    owned: list[Any] = []
    sink_metrics: PrometheusMetrics | None = None
    sink_alerts: Alerts | None = None
    if metrics is not False:
        from gemini_guard.telemetry.prometheus import PrometheusMetrics

        sink_metrics = PrometheusMetrics() if metrics is True else metrics
        sink_metrics.watch(guard)
        guard.telemetry.add_sink(sink_metrics)
    if alerts is not False:
        from gemini_guard.telemetry.alerts import Alerts

        if alerts is True:
            sink_alerts = Alerts()
            owned.append(sink_alerts)
        else:
            sink_alerts = alerts
        sink_alerts.attach(guard)
        guard.telemetry.add_sink(sink_alerts)
    return sink_metrics, sink_alerts, owned
