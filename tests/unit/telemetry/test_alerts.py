"""Alert rules on scripted events: when they fire, and when they stay quiet."""

from __future__ import annotations

from collections.abc import Sequence

from gemini_guard.telemetry import (
    Alert,
    AttemptFailed,
    BreakerStateChanged,
    CallUsage,
    Event,
    QuotaNotice,
)
from gemini_guard.telemetry.alerts import (
    AlertContext,
    Alerts,
    DailyQuotaRule,
    default_rules,
)
from gemini_guard.telemetry.quota_state import QuotaReading

PRO = "gemini-2.5-pro"
T0 = 1_767_225_600.0


def ok(t: float, model: str = PRO) -> CallUsage:
    """A successful call."""
    return CallUsage(
        timestamp=T0 + t, call_id=f"c{t}", model=model, attempts=1, elapsed=1.0,
        input_tokens=10, output_tokens=10, thinking_tokens=0, cached_tokens=0, cost_usd=0.0,
    )  # fmt: skip


def failed(t: float, status: int, model: str = PRO) -> AttemptFailed:
    return AttemptFailed(
        timestamp=T0 + t, call_id=f"c{t}", model=model, http_status=status, grpc_status=None,
        category="rate_limited" if status == 429 else "overloaded", message="m",
        attempt=1, elapsed=0.1,
    )  # fmt: skip


def run(events: Sequence[Event], alerts: Alerts | None = None) -> list[Alert]:
    alerts = alerts or Alerts()
    for event in events:
        alerts(event)
    return list(alerts.fired)


def test_a_jump_in_429s_fires_once_with_since_when() -> None:
    # an hour of calm (2% 429s), then half the requests get 429 from t=3700
    calm = [failed(t, 429) if t % 500 == 0 else ok(t) for t in range(0, 3600, 10)]
    storm = [failed(t, 429) if t % 20 == 0 else ok(t) for t in range(3700, 3900, 10)]
    fired = run(calm + storm)
    assert [a.rule for a in fired] == ["429_rate"]
    alert = fired[0]
    assert alert.since == T0 + 3700
    assert "429" in alert.what
    assert "quotaValue" in alert.next_step
    assert "429" in alert.what_zh


def test_a_steady_429_rate_is_its_own_baseline() -> None:
    # 30% 429s for two hours: bad, but not news; no alert after the first hour
    events = [failed(t, 429) if t % 30 == 0 else ok(t) for t in range(0, 7200, 10)]
    fired = run(events)
    assert all(a.since < T0 + 3600 for a in fired)
    late = Alerts()
    for event in events:
        if event.timestamp >= T0 + 3600:
            late.fired.clear()
        late(event)
    assert list(late.fired) == []


def test_a_few_errors_are_not_a_spike() -> None:
    events = [failed(t, 503) if t < 40 else ok(t) for t in range(0, 600, 10)]
    assert run(events) == []  # four 503s: under min_errors


def test_a_5xx_spike_is_critical() -> None:
    events = [ok(t) for t in range(0, 600, 10)] + [failed(t, 503) for t in range(600, 700, 10)]
    fired = run(events)
    assert [(a.rule, a.severity) for a in fired] == [("5xx_spike", "critical")]
    assert fired[0].since == T0 + 600


def test_limit_learned_and_breaker_open_fire_at_once() -> None:
    learned = QuotaNotice(
        timestamp=T0, call_id="", model=PRO, notice="limit_learned", message="m",
        project="p", metric="rpm", limit=2,
    )  # fmt: skip
    opened = BreakerStateChanged(
        timestamp=T0 + 5, call_id="c", model=PRO, old="closed", new="open", reason="storm",
        open_until=T0 + 35,
    )  # fmt: skip
    again = BreakerStateChanged(
        timestamp=T0 + 40, call_id="c", model=PRO, old="half_open", new="open", reason="probe"
    )
    fired = run([learned, opened, again])
    assert [a.rule for a in fired] == ["limit_cut", "breaker_open"]  # re-opening is quiet
    assert "2 RPM" in fired[0].what
    assert "00:00:35 UTC" in fired[1].what


def test_daily_quota_fires_once_a_day_at_80_percent() -> None:
    used = {"n": 0}

    def read(project: str, model: str) -> QuotaReading:
        return QuotaReading(
            project=project, model=model, minute_requests=0, minute_request_limit=5,
            minute_input_tokens=0, minute_input_token_limit=None, day_requests=used["n"],
            day_request_limit=100, day_input_tokens=0, day_input_token_limit=None,
        )  # fmt: skip

    rule = DailyQuotaRule(every=0)
    context = AlertContext(read_quota=read, project="main")
    fired = []
    for n in range(0, 100, 5):
        used["n"] = n
        alert = rule.observe(ok(float(n)), context)
        if alert is not None:
            fired.append((n, alert))
    assert [n for n, _ in fired] == [80]
    assert "80% of the day's quota" in fired[0][1].what
    assert "80 of 100 requests" in fired[0][1].what


def test_rules_are_easy_to_add() -> None:
    class PhantomRule:
        name = "phantom_429"

        def observe(self, event: Event, context: AlertContext) -> Alert | None:
            if isinstance(event, QuotaNotice) and event.notice == "phantom_429":
                return Alert(
                    timestamp=event.timestamp, call_id="", model=event.model, rule=self.name,
                    severity="warning", since=event.timestamp, what="w", next_step="n",
                    what_zh="w", next_step_zh="n",
                )  # fmt: skip
            return None

    alerts = Alerts(rules=(*default_rules(), PhantomRule()))
    notice = QuotaNotice(timestamp=T0, call_id="", model=PRO, notice="phantom_429", message="m")
    assert [a.rule for a in run([notice], alerts)] == ["phantom_429"]


def test_memory_stays_small_at_any_request_rate() -> None:
    from gemini_guard.telemetry.alerts import ErrorRateRule

    rule = next(r for r in default_rules() if r.name == "5xx_spike")
    assert isinstance(rule, ErrorRateRule)
    context = AlertContext(read_quota=lambda project, model: None, project="p")
    # two hours at 50 requests a second, 1% of them 503
    for i in range(2 * 3600 * 50):
        t = i / 50
        rule.observe(failed(t, 503) if i % 100 == 0 else ok(t), context)
    kept = rule._buckets[PRO]
    # the baseline hour and the 2-minute window, in 4-second buckets
    assert len(kept) <= (3600 + 120) / 4 + 2
