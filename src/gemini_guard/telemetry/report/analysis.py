"""From a run's events (JSONL) to the figures of its report, and its written summary.

Times are bucketed so that a chart never has more than about 180 columns: one minute
for runs up to three hours, longer buckets beyond (rates are still per minute).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemini_guard.errors import ConfigError
from gemini_guard.pacific import quota_day

__all__ = ["Episode", "EventsFileError", "ReportData", "analyse", "load_events"]

_MAX_COLUMNS = 180


class EventsFileError(ConfigError):
    """An events file that cannot be read as one; `message_zh` says why in Chinese."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message_zh = message_zh


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a JSONL file written by `JsonlSink` (blank lines skipped)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise EventsFileError(
            f"{source}: no such events file; write one with [telemetry] jsonl = "
            '"events.jsonl" or JsonlSink(path)',
            f'{source}：没有这个事件文件；可用 [telemetry] jsonl = "events.jsonl" '
            "或 JsonlSink(path) 写出一个",
        )
    events: list[dict[str, Any]] = []
    with source.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EventsFileError(
                    f"{source}:{number}: not a JSON object ({exc.msg}); each line must be "
                    "one event as JsonlSink writes it",
                    f"{source}:{number}：不是 JSON 对象（{exc.msg}）；每行必须是 JsonlSink "
                    "写出的一个事件",
                ) from None
            if not isinstance(event, dict) or "event" not in event or "timestamp" not in event:
                raise EventsFileError(
                    f'{source}:{number}: an event needs "event" and "timestamp" fields',
                    f'{source}:{number}：事件需要 "event" 和 "timestamp" 字段',
                )
            events.append(event)
    return events


def clock_text(wall: float, *, seconds: bool = False) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


@dataclass(frozen=True, slots=True)
class Episode:
    """A stretch of time in which a model failed a large share of its requests."""

    model: str
    kind: str  # "5xx" or "429"
    status: int  # the most common HTTP status among the errors
    start: float
    end: float
    errors: int
    attempts: int

    @property
    def share(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0


@dataclass(slots=True)
class ReportData:
    """Everything the HTML and text reports show."""

    start: float = 0.0
    end: float = 0.0
    bucket: float = 60.0  # seconds per column
    columns: list[float] = field(default_factory=list)  # bucket starts
    models: list[str] = field(default_factory=list)
    attempts: dict[str, list[int]] = field(default_factory=dict)  # model -> per column
    limits: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # learned RPM
    table_limits: dict[str, int] = field(default_factory=dict)  # RPM of the tier's table
    tier: str | None = None
    errors: dict[str, list[int]] = field(default_factory=dict)  # category -> per column
    latency: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)
    flows: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: int = 0
    succeeded: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # error name -> calls
    fell_back: dict[str, int] = field(default_factory=dict)  # served model -> calls
    spend: dict[tuple[str, str], float] = field(default_factory=dict)  # (day, model) -> USD
    tokens: dict[str, int] = field(default_factory=dict)  # kind -> tokens
    breaker: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    summary_zh: list[str] = field(default_factory=list)  # the same lines in Chinese

    @property
    def total_attempts(self) -> int:
        return sum(sum(v) for v in self.attempts.values())

    @property
    def total_spend(self) -> float:
        return sum(self.spend.values())


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def analyse(events: Iterable[Mapping[str, Any]], *, tier: str | None = None) -> ReportData:
    """The report's figures from a run's events, in any order. With `tier`, the
    requests-per-minute chart also shows that tier's limits from the model table."""
    rows = sorted(events, key=lambda e: float(e["timestamp"]))
    data = ReportData(tier=tier)
    if not rows:
        data.summary = ["No events: nothing was recorded in this file."]
        data.summary_zh = ["没有事件：此文件中没有任何记录。"]
        return data
    data.start = float(rows[0]["timestamp"])
    data.end = float(rows[-1]["timestamp"])
    span = max(60.0, data.end - data.start)
    data.bucket = 60.0 * max(1, math.ceil(span / 60.0 / _MAX_COLUMNS))
    origin = math.floor(data.start / data.bucket) * data.bucket
    count = int((data.end - origin) // data.bucket) + 1
    data.columns = [origin + i * data.bucket for i in range(count)]

    def column(wall: float) -> int:
        return min(count - 1, int((wall - origin) // data.bucket))

    models: list[str] = []
    failures: dict[str, list[int]] = {}  # model -> 5xx per column
    limited: dict[str, list[int]] = {}  # model -> 429 per column
    statuses: dict[tuple[str, str], Counter[int]] = {}
    elapsed: dict[str, list[float]] = {}
    fallback_calls: dict[str, str] = {}  # call_id -> model it moved to last
    served: dict[str, str] = {}

    for e in rows:
        kind = e["event"]
        wall = float(e["timestamp"])
        model = str(e.get("model") or "")
        if model and model not in models and kind != "quota_notice":
            models.append(model)
        if kind == "attempt_started":
            data.attempts.setdefault(model, [0] * count)[column(wall)] += 1
        elif kind == "attempt_failed":
            category = str(e.get("category") or "unknown")
            data.errors.setdefault(category, [0] * count)[column(wall)] += 1
            status = e.get("http_status")
            if isinstance(status, int) and (status >= 500 or status == 429):
                family = "5xx" if status >= 500 else "429"
                into = failures if family == "5xx" else limited
                into.setdefault(model, [0] * count)[column(wall)] += 1
                statuses.setdefault((model, family), Counter())[status] += 1
        elif kind == "fallback_taken":
            target = e.get("to_model")
            if target:
                flow = (model, str(target))
                data.flows[flow] = data.flows.get(flow, 0) + 1
                fallback_calls[str(e.get("call_id"))] = str(target)
        elif kind == "call_succeeded":
            data.calls += 1
            data.succeeded += 1
            elapsed.setdefault(model, []).append(float(e.get("elapsed") or 0.0))
            served[str(e.get("call_id"))] = model
        elif kind == "call_failed":
            data.calls += 1
            name = str(e.get("error") or "CallFailed")
            data.failed[name] = data.failed.get(name, 0) + 1
        elif kind == "call_usage":
            cost = e.get("cost_usd")
            if isinstance(cost, int | float) and cost:
                key = (quota_day(wall).isoformat(), model)
                data.spend[key] = data.spend.get(key, 0.0) + float(cost)
            for name in ("input", "output", "thinking", "cached"):
                value = e.get(f"{name}_tokens")
                if isinstance(value, int):
                    data.tokens[name] = data.tokens.get(name, 0) + value
        elif kind == "breaker_state_changed":
            data.breaker.setdefault(model, []).append((wall, str(e.get("new"))))
        elif kind == "quota_notice":
            if e.get("metric") == "rpm" and isinstance(e.get("limit"), int):
                data.limits.setdefault(model, []).append((wall, int(e["limit"])))
        elif kind == "alert":
            data.alerts.append(dict(e))

    data.models = models
    for model in models:
        data.attempts.setdefault(model, [0] * count)
        rpm = _table_rpm(model, tier)
        if rpm is not None:
            data.table_limits[model] = rpm
    for model, values in elapsed.items():
        values.sort()
        data.latency[model] = (
            len(values),
            _percentile(values, 0.5),
            _percentile(values, 0.9),
            _percentile(values, 0.99),
        )
    for call_id, target in fallback_calls.items():
        if served.get(call_id) == target:
            data.fell_back[target] = data.fell_back.get(target, 0) + 1
    for family, per_model in (("5xx", failures), ("429", limited)):
        for model, errors in per_model.items():
            episode = _worst_episode(model, family, errors, data)
            if episode is not None:
                common = statuses[(model, family)].most_common(1)[0][0]
                data.episodes.append(
                    Episode(
                        model=model,
                        kind=family,
                        status=common,
                        start=episode[0],
                        end=episode[1],
                        errors=episode[2],
                        attempts=episode[3],
                    )
                )
    data.episodes.sort(key=lambda ep: ep.start)
    written = _summary(data)
    data.summary = [en for en, _ in written]
    data.summary_zh = [zh for _, zh in written]
    return data


def _table_rpm(model: str, tier: str | None) -> int | None:
    from gemini_guard.tiers import model_spec

    spec = model_spec(model) if tier else None
    if spec is None or tier not in spec.tiers:
        return None
    return spec.tiers[tier].rpm


def _worst_episode(
    model: str, family: str, errors: list[int], data: ReportData
) -> tuple[float, float, int, int] | None:
    """The run of columns (gaps of one allowed) in which `model` failed at least a
    fifth of its requests, with the most errors; (start, end, errors, attempts)."""
    attempts = data.attempts.get(model, [])
    bad = [
        attempts[i] > 0 and errors[i] >= 1 and errors[i] / attempts[i] >= 0.2
        for i in range(len(errors))
    ]
    best: tuple[float, float, int, int] | None = None
    i = 0
    while i < len(bad):
        if not bad[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(bad) and (bad[j + 1] or (j + 2 < len(bad) and bad[j + 2])):
            j += 1
        while not bad[j]:
            j -= 1
        errs, sent = sum(errors[i : j + 1]), sum(attempts[i : j + 1])
        if errs >= 3 and (best is None or errs > best[2]):
            best = (data.columns[i], data.columns[j] + data.bucket, errs, sent)
        i = j + 1
    return best


def _money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 0.01 else f"${usd:.4f}"


def _summary(data: ReportData) -> list[tuple[str, str]]:
    """The written summary, each line in English and in Chinese."""
    lines: list[tuple[str, str]] = []
    for ep in data.episodes:
        start, end = clock_text(ep.start), clock_text(ep.end)
        lines.append(
            (
                f"Between {start} and {end} UTC {ep.model} returned {ep.status} to "
                f"{ep.share:.0%} of requests ({ep.errors:,} of {ep.attempts:,}).",
                f"UTC {start} 至 {end}，{ep.model} 对 {ep.share:.0%} 的请求返回了 {ep.status}"
                f"（{ep.attempts:,} 个中的 {ep.errors:,} 个）。",
            )
        )
    for model, points in data.limits.items():
        wall, limit = points[0]
        lines.append(
            (
                f"At {clock_text(wall)} UTC the server revealed a limit of {limit} requests "
                f"per minute on {model}; calls were paced by it from then on.",
                f"UTC {clock_text(wall)}，服务器透露 {model} 的限额为每分钟 {limit} 个请求；"
                "此后的调用都按它限速。",
            )
        )
    for target, n in sorted(data.fell_back.items(), key=lambda kv: -kv[1]):
        lines.append(
            (
                f"{n:,} calls fell back to {target} and were answered there.",
                f"{n:,} 个调用回退到 {target}，并在那里得到了回答。",
            )
        )
    failed = sum(data.failed.values())
    if data.calls:
        if failed == 0:
            lines.append(
                (
                    f"Nothing was lost: all {data.calls:,} calls succeeded.",
                    f"没有丢失：全部 {data.calls:,} 个调用都成功了。",
                )
            )
        else:
            how = ", ".join(f"{n:,} {name}" for name, n in sorted(data.failed.items()))
            lines.append(
                (
                    f"{failed:,} of {data.calls:,} calls failed ({how}).",
                    f"{data.calls:,} 个调用中有 {failed:,} 个失败（{how}）。",
                )
            )
    for model, changes in data.breaker.items():
        opened = sum(1 for _, state in changes if state == "open")
        if opened:
            lines.append(
                (
                    f"The circuit breaker of {model} opened {opened} time(s).",
                    f"{model} 的熔断器打开了 {opened} 次。",
                )
            )
    if data.spend:
        by_model: dict[str, float] = {}
        for (_, model), usd in data.spend.items():
            by_model[model] = by_model.get(model, 0.0) + usd
        parts = ", ".join(f"{m} {_money(v)}" for m, v in sorted(by_model.items()))
        total = _money(data.total_spend)
        lines.append((f"Spent {total} ({parts}).", f"花费 {total}（{parts}）。"))
    if data.alerts:
        rules = ", ".join(
            f"{r} ×{n}" for r, n in Counter(str(a.get("rule")) for a in data.alerts).items()
        )
        lines.append(
            (
                f"{len(data.alerts)} alert(s): {rules}.",
                f"{len(data.alerts)} 条告警：{rules}。",
            )
        )
    if not lines:
        lines.append(("No calls in this file.", "此文件中没有调用。"))
    return lines
