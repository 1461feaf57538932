"""The live page's memory of recent calls: events kept as they come, their rows built
(secrets redacted) when the page is drawn."""

from __future__ import annotations

from gemini_guard.gateway.status import RecentEvents, status_page
from gemini_guard.secrets import REDACTED, register_secret
from gemini_guard.telemetry.events import AttemptFailed, CallSucceeded
from gemini_guard.telemetry.sinks import Telemetry

SECRET = "gw-status-secret-7c1d9e2f"


def _failed(n: int, message: str) -> AttemptFailed:
    return AttemptFailed(
        timestamp=1_000.0 + n,
        call_id=f"c{n}",
        model="gemini-2.5-pro",
        http_status=503,
        grpc_status="UNAVAILABLE",
        category="overloaded",
        message=message,
        attempt=1,
        elapsed=1.0,
    )


def test_a_secret_in_an_event_never_reaches_the_page() -> None:
    register_secret(SECRET)
    recent = RecentEvents()
    telemetry = Telemetry([recent], secrets=[SECRET])
    telemetry.emit(_failed(1, f"upstream said: bad key {SECRET} and key=AIzaSyABCDEFGH12345"))
    [row] = recent.rows()
    assert SECRET not in str(row)
    assert "AIzaSyABCDEFGH12345" not in str(row)
    assert row["message"].count(REDACTED) == 2
    page = status_page(recent)
    assert SECRET not in page
    assert "AIzaSyABCDEFGH12345" not in page


def test_only_the_last_events_are_kept_and_drawn_in_order() -> None:
    recent = RecentEvents(keep=3)
    for n in range(5):
        recent(
            CallSucceeded(
                timestamp=float(n),
                call_id=f"c{n}",
                model="gemini-2.5-flash",
                attempts=1,
                elapsed=0.1,
            )
        )
    rows = recent.rows()
    assert [r["call_id"] for r in rows] == ["c2", "c3", "c4"]
    assert {r["event"] for r in rows} == {"call_succeeded"}
