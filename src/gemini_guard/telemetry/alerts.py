"""Alerts: rules that watch a Guard's events and say when a human should look.

    alerts = Alerts(webhook="https://hooks.example.com/T000/B000")
    guard = Guard(..., alerts=alerts)

Each rule sees every event and returns an `Alert` event (or None). The default rules:

    429_rate      429s on a model well above their recent baseline (limits may have been cut)
    limit_cut     the limiter learned an enforced limit below the configured one
    5xx_spike     a model answering 5xx to a large share of requests (an outage)
    breaker_open  a model's circuit breaker opened
    daily_quota   80% of a model's daily quota used

Alerts go to the Guard's telemetry like any event (so to logs, JSONL files, metrics)
and, with `webhook`, are POSTed as small JSON objects from a background thread: a
slow or broken webhook never delays a call, and at most `max_queue` alerts wait.
A new rule is any object with a `name` and `observe(event, context) -> Alert | None`:
pass `rules=(*default_rules(), MyRule())`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from gemini_guard.clock import Clock, SystemClock
from gemini_guard.pacific import next_reset, quota_day
from gemini_guard.telemetry.events import (
    Alert,
    AttemptFailed,
    BreakerStateChanged,
    CallUsage,
    Event,
    QuotaNotice,
)
from gemini_guard.telemetry.quota_state import QuotaReading, limiter_of, read_quota

__all__ = [
    "AlertContext",
    "AlertRule",
    "Alerts",
    "BreakerOpenRule",
    "DailyQuotaRule",
    "ErrorRateRule",
    "LimitCutRule",
    "WebhookSender",
    "default_rules",
]

_log = logging.getLogger("gemini_guard.alerts")


def _hhmm(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What a rule may read besides the event: the Guard's quota and project."""

    read_quota: Callable[[str, str], QuotaReading | None]
    project: str


class AlertRule(Protocol):
    name: str

    def observe(self, event: Event, context: AlertContext) -> Alert | None: ...


def _alert(
    event: Event,
    rule: str,
    *,
    severity: str,
    since: float,
    what: tuple[str, str],
    next_step: tuple[str, str],
    project: str | None = None,
) -> Alert:
    return Alert(
        timestamp=event.timestamp,
        call_id="",
        model=event.model,
        rule=rule,
        severity=severity,
        since=since,
        what=what[0],
        next_step=next_step[0],
        what_zh=what[1],
        next_step_zh=next_step[1],
        project=project,
    )


@dataclass(slots=True)
class _Bucket:
    """Attempt outcomes of one model in `step` seconds."""

    start: float
    total: int = 0
    matched: int = 0
    first_match: float = 0.0
    last_match: float = 0.0


class ErrorRateRule:
    """Fires when the share of a model's attempts that `matches` picks, over the last
    `window` seconds, is at least `min_share` and `factor` times its share over the
    `baseline` seconds before, with at least `min_errors` such errors. It fires again
    for the model only after `quiet` seconds.

    Outcomes are counted in buckets of `window / 30` seconds, so memory and work stay
    small at any request rate; the condition is checked at most once a bucket per
    model, on an error.
    """

    def __init__(
        self,
        name: str,
        matches: Callable[[AttemptFailed], bool],
        *,
        describe: Callable[[str, int, int, float, float, float], tuple[str, str]],
        next_step: tuple[str, str],
        severity: str = "warning",
        window: float = 300.0,
        baseline: float = 3600.0,
        min_errors: int = 5,
        min_share: float = 0.2,
        factor: float = 3.0,
        quiet: float = 1800.0,
    ) -> None:
        self.name = name
        self._matches = matches
        self._describe = describe
        self._next_step = next_step
        self._severity = severity
        self._window, self._baseline = window, baseline
        self._step = window / 30
        self._min_errors, self._min_share, self._factor = min_errors, min_share, factor
        self._quiet = quiet
        self._buckets: dict[str, deque[_Bucket]] = {}  # per model, oldest first
        self._checked: dict[str, float] = {}  # model -> start of the bucket last checked
        self._fired: dict[str, float] = {}

    def observe(self, event: Event, context: AlertContext) -> Alert | None:
        if isinstance(event, AttemptFailed):
            matched = self._matches(event)
        elif isinstance(event, CallUsage):  # a success
            matched = False
        else:
            return None
        now = event.timestamp
        buckets = self._buckets.setdefault(event.model, deque())
        start = now - now % self._step
        if not buckets or buckets[-1].start < start:
            buckets.append(_Bucket(start))
            horizon = now - self._window - self._baseline
            while buckets[0].start + self._step < horizon:
                buckets.popleft()
        bucket = buckets[-1]  # late events (out of order) count in the newest bucket
        bucket.total += 1
        if not matched:
            return None
        if not bucket.matched:
            bucket.first_match = now
        bucket.matched += 1
        bucket.last_match = now
        if self._checked.get(event.model) == bucket.start:
            return None
        last = self._fired.get(event.model)
        if last is not None and now - last < self._quiet:
            return None
        cut = now - self._window
        recent = [b for b in buckets if b.start + self._step > cut]
        errors = sum(b.matched for b in recent)
        if errors < self._min_errors:
            return None
        self._checked[event.model] = bucket.start
        total = sum(b.total for b in recent)
        share = errors / total
        before_total = sum(b.total for b in buckets) - total
        base = (sum(b.matched for b in buckets) - errors) / before_total if before_total else 0.0
        if share < self._min_share or share < self._factor * base:
            return None
        self._fired[event.model] = now
        since = self._onset(recent, total)
        return _alert(
            event,
            self.name,
            severity=self._severity,
            since=since,
            what=self._describe(event.model, errors, total, share, base, since),
            next_step=self._next_step,
        )

    def _onset(self, recent: list[_Bucket], total: int) -> float:
        """When the current run of errors began: walking back from the newest error,
        the run ends at a quiet gap (a fifth of the window, or three times the usual
        spacing of requests if that is longer), so an isolated error from before the
        storm does not date it."""
        spacing = self._window / max(1, total - 1)
        gap = max(self._window / 5, 3 * spacing)
        with_errors = [b for b in recent if b.matched]
        onset = with_errors[-1].first_match
        for earlier in reversed(with_errors[:-1]):
            if onset - earlier.last_match > gap:
                break
            onset = earlier.first_match
        return onset


def _describe_429(
    model: str, errors: int, total: int, share: float, base: float, since: float
) -> tuple[str, str]:
    return (
        f"{model}: {share:.0%} of requests got 429 since {_hhmm(since)} ({errors} of "
        f"{total}), against {base:.0%} before",
        f"{model}：自 {_hhmm(since)} 起 {share:.0%} 的请求返回 429（{total} 次中 {errors} 次），"
        f"此前为 {base:.0%}",
    )


def _describe_5xx(
    model: str, errors: int, total: int, share: float, base: float, since: float
) -> tuple[str, str]:
    return (
        f"{model}: {share:.0%} of requests failed with 5xx since {_hhmm(since)} ({errors} "
        f"of {total}), against {base:.0%} before",
        f"{model}：自 {_hhmm(since)} 起 {share:.0%} 的请求返回 5xx 错误（{total} 次中 "
        f"{errors} 次），此前为 {base:.0%}",
    )


class LimitCutRule:
    """The limiter learned that the server enforces less than configured."""

    name = "limit_cut"

    def observe(self, event: Event, context: AlertContext) -> Alert | None:
        if not isinstance(event, QuotaNotice) or event.notice != "limit_learned":
            return None
        unit = (event.metric or "").upper()
        return _alert(
            event,
            self.name,
            severity="critical",
            since=event.timestamp,
            project=event.project,
            what=(
                f"{event.model} (project {event.project}): the server enforces about "
                f"{event.limit} {unit}, below the configured limit, since "
                f"{_hhmm(event.timestamp)}",
                f"{event.model}（项目 {event.project}）：自 {_hhmm(event.timestamp)} 起，"
                f"服务器实际执行的限额约为 {event.limit} {unit}，低于配置值",
            ),
            next_step=(
                "Google lowered the limit without notice (as on 2025-12-06). The Guard "
                "now paces at the new limit; put it in [quota.limits] of gemini-guard.toml, "
                "check the project's quota page, and move load to another model or project "
                "if it is not enough.",
                "Google 未经通知下调了限额（如 2025-12-06）。Guard 已按新限额限速；请把它写入 "
                "gemini-guard.toml 的 [quota.limits]，查看项目的配额页面；如果不够，"
                "把流量转到其他模型或项目。",
            ),
        )


class BreakerOpenRule:
    """A model's breaker opened (once per model per `quiet` seconds)."""

    name = "breaker_open"

    def __init__(self, *, quiet: float = 600.0) -> None:
        self._quiet = quiet
        self._fired: dict[tuple[str, str | None], float] = {}

    def observe(self, event: Event, context: AlertContext) -> Alert | None:
        if not isinstance(event, BreakerStateChanged) or event.new != "open":
            return None
        key = (event.model, event.project)
        last = self._fired.get(key)
        if last is not None and event.timestamp - last < self._quiet:
            return None
        self._fired[key] = event.timestamp
        until = f" until {_hhmm(event.open_until)}" if event.open_until else ""
        until_zh = f"，直到 {_hhmm(event.open_until)}" if event.open_until else ""
        return _alert(
            event,
            self.name,
            severity="warning",
            since=event.timestamp,
            project=event.project,
            what=(
                f"{event.model}: circuit breaker opened at {_hhmm(event.timestamp)} "
                f"({event.reason}); calls skip it{until}",
                f"{event.model}：熔断器于 {_hhmm(event.timestamp)} 打开（{event.reason}），"
                f"调用将跳过该模型{until_zh}",
            ),
            next_step=(
                "Calls go to the next model of the chain meanwhile. If it keeps opening, "
                "look at the error mix (gemini-guard report) and Google's status page "
                "(aistudio.google.com/status).",
                "在此期间调用会转到链中的下一个模型。如果反复打开，请查看错误构成"
                "（gemini-guard report）和 Google 状态页（aistudio.google.com/status）。",
            ),
        )


class DailyQuotaRule:
    """`threshold` of a model's daily quota (requests or input tokens) used: fires
    once per project, model and Pacific day. The ledger is read at most every
    `every` seconds per model, after successful calls."""

    name = "daily_quota"

    def __init__(self, *, threshold: float = 0.8, every: float = 30.0) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self._threshold = threshold
        self._every = every
        self._read_at: dict[str, float] = {}
        self._fired: set[tuple[str, str, str]] = set()

    def observe(self, event: Event, context: AlertContext) -> Alert | None:
        if not isinstance(event, CallUsage):  # after successes only
            return None
        now = event.timestamp
        last = self._read_at.get(event.model)
        if last is not None and now - last < self._every:
            return None
        self._read_at[event.model] = now
        project = context.project
        day = quota_day(now).isoformat()
        if (project, event.model, day) in self._fired:
            return None
        reading = context.read_quota(project, event.model)
        share = reading.day_fraction() if reading is not None else None
        if reading is None or share is None or share < self._threshold:
            return None
        self._fired.add((project, event.model, day))
        resets = _hhmm(next_reset(now))
        used = (
            f"{reading.day_requests} of {reading.day_request_limit} requests"
            if reading.day_request_limit
            else f"{reading.day_input_tokens} of {reading.day_input_token_limit} input tokens"
        )
        used_zh = (
            f"{reading.day_request_limit} 次请求中的 {reading.day_requests} 次"
            if reading.day_request_limit
            else f"{reading.day_input_token_limit} 个输入 token 中的 {reading.day_input_tokens} 个"
        )
        return _alert(
            event,
            self.name,
            severity="warning",
            since=now,
            project=project,
            what=(
                f"{event.model} (project {project}): {share:.0%} of the day's quota used "
                f"({used}) by {_hhmm(now)}; it resets at {resets}",
                f"{event.model}（项目 {project}）：截至 {_hhmm(now)} 已用当日配额的 "
                f"{share:.0%}（{used_zh}），将于 {resets} 重置",
            ),
            next_step=(
                "Move traffic to another model or project, defer batch work until the "
                "reset, or ask for a higher tier before the day's quota runs out.",
                "把流量转到其他模型或项目、把批处理推迟到重置之后，或在当日配额用完前申请更高的层级。",
            ),
        )


def default_rules() -> tuple[AlertRule, ...]:
    """Fresh instances of the five rules described in the module docstring."""
    return (
        ErrorRateRule(
            "429_rate",
            lambda e: e.http_status == 429,
            describe=_describe_429,
            next_step=(
                "Google may have lowered your limits (as on 2025-12-06): compare the "
                "quotaValue in the 429 bodies with your configured limits "
                "(gemini-guard quota) and check the project's quota page.",
                "Google 可能下调了你的限额（如 2025-12-06）：用 gemini-guard quota 对比 429 "
                "响应中的 quotaValue 与配置的限额，并查看项目的配额页面。",
            ),
        ),
        LimitCutRule(),
        ErrorRateRule(
            "5xx_spike",
            lambda e: e.http_status is not None and e.http_status >= 500,
            describe=_describe_5xx,
            next_step=(
                "An outage or overload on Google's side: check aistudio.google.com/status. "
                "Calls fall back to the next model meanwhile; nothing to change unless it lasts.",
                "Google 侧故障或过载：请查看 aistudio.google.com/status。期间调用会回退到下一个"
                "模型；若持续，再考虑调整。",
            ),
            severity="critical",
            window=120.0,
            min_share=0.3,
        ),
        BreakerOpenRule(),
        DailyQuotaRule(),
    )


class WebhookSender:
    """POSTs alerts as JSON from one daemon thread, retrying with backoff.

    `send` never blocks: when `max_queue` alerts already wait, the new one is dropped
    (and counted in `dropped`). `clock` paces the retries (a `ScaledClock` in tests).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        attempts: int = 4,
        backoff: float = 1.0,
        timeout: float = 5.0,
        max_queue: int = 100,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook must be an http:// or https:// URL, got {url!r}")
        self.url = url
        self._clock = clock if clock is not None else SystemClock()
        self._attempts, self._backoff, self._timeout = attempts, backoff, timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def __repr__(self) -> str:
        # The URL may carry a token (Slack-style webhooks): show its host only.
        host = self.url.split("/")[2] if self.url.count("/") >= 2 else "?"
        return f"WebhookSender(host={host!r})"

    def send(self, payload: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gemini-guard-webhook", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.dropped += 1
            _log.warning("alert webhook queue full; dropped a %s alert", payload.get("alert"))

    def close(self, timeout: float | None = 10.0) -> None:
        """Deliver what waits (within `timeout` real seconds), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self._timeout) as client:
            while True:
                payload = self._queue.get()
                if payload is None:
                    return
                self._deliver(client, payload)

    def _deliver(self, client: Any, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"content-type": "application/json; charset=utf-8"}
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                response = client.post(self.url, content=body, headers=headers)
                if response.status_code < 300:
                    self.sent += 1
                    return
                retry = response.status_code >= 500 or response.status_code == 429
                problem = f"HTTP {response.status_code}"
            except Exception as exc:  # the receiver's problem must not end the thread
                retry, problem = True, type(exc).__name__
            if not retry or attempt == self._attempts:
                break
            self._clock.sleep(delay)
            delay *= 2
        self.failed += 1
        _log.warning("alert webhook failed (%s); gave up on a %s alert", problem, payload["alert"])


def payload_of(alert: Alert) -> dict[str, Any]:
    """The JSON a webhook receives; `text` makes it readable in chat tools as is."""
    return {
        "alert": alert.rule,
        "severity": alert.severity,
        "model": alert.model,
        "project": alert.project,
        "since": alert.since,
        "at": alert.timestamp,
        "what": alert.what,
        "next_step": alert.next_step,
        "what_zh": alert.what_zh,
        "next_step_zh": alert.next_step_zh,
        "text": f"[{alert.severity}] {alert.what}. {alert.next_step}",
    }


class Alerts:
    """Runs alert rules over a Guard's events (a telemetry sink; see the module doc).

    `fired` keeps the latest alerts (at most `keep`), newest last.
    """

    # Rules read fields, never free text; successes are learned from `CallUsage`.
    reads_text = False
    per_attempt = False

    def __init__(
        self,
        *,
        rules: Iterable[AlertRule] | None = None,
        webhook: str | WebhookSender | None = None,
        keep: int = 1000,
    ) -> None:
        self.rules: tuple[AlertRule, ...] = tuple(rules) if rules is not None else default_rules()
        self.webhook = WebhookSender(webhook) if isinstance(webhook, str) else webhook
        self.fired: deque[Alert] = deque(maxlen=keep)
        self._emit: Callable[[Event], None] | None = None
        self._context = AlertContext(read_quota=lambda project, model: None, project="default")
        self._lock = threading.RLock()

    def attach(self, guard: Any) -> None:
        """Raise alerts into `guard`'s telemetry, and read its quota ledgers."""
        self._emit = guard.telemetry.emit
        limiter = limiter_of(guard.quota)
        project = guard.engine.project
        if project == "*":  # a pool: its first project (see docs/telemetry.md)
            project = guard.quota.projects[0].name

        def read(project: str, model: str) -> QuotaReading | None:
            return None if limiter is None else read_quota(limiter, project, model)

        self._context = AlertContext(read_quota=read, project=project)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Alert):
            return
        raised = []
        with self._lock:
            for rule in self.rules:
                alert = rule.observe(event, self._context)
                if alert is not None:
                    self.fired.append(alert)
                    raised.append(alert)
        for alert in raised:
            _log.warning("alert %s: %s. %s", alert.rule, alert.what, alert.next_step)
            if self._emit is not None:
                self._emit(alert)
            if self.webhook is not None:
                self.webhook.send(payload_of(alert))

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
