"""The report's figures and written summary, from scripted events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.errors import ConfigError
from gemini_guard.telemetry.report import analyse, load_events, render_html, render_text

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC).timestamp()


def bad_day() -> list[dict[str, Any]]:
    """An hour: pro answers 503 to 3 calls in 5 from 14:02 to 14:31; those fall back."""
    events: list[dict[str, Any]] = []
    for i in range(600):
        t = T0 + i * 6.0
        call = f"c{i}"
        storm = T0 + 120 <= t < T0 + 1860 and i % 5 < 3
        events.append({"event": "attempt_started", "timestamp": t, "call_id": call, "model": PRO})
        if storm:
            events += [
                {"event": "attempt_failed", "timestamp": t + 1, "call_id": call, "model": PRO,
                 "http_status": 503, "category": "overloaded"},
                {"event": "fallback_taken", "timestamp": t + 1, "call_id": call, "model": PRO,
                 "to_model": FLASH, "reason": "overloaded"},
                {"event": "attempt_started", "timestamp": t + 1, "call_id": call, "model": FLASH},
                {"event": "call_succeeded", "timestamp": t + 2, "call_id": call, "model": FLASH,
                 "attempts": 2, "elapsed": 2.0},
            ]  # fmt: skip
            model = FLASH
        else:
            events.append(
                {"event": "call_succeeded", "timestamp": t + 1, "call_id": call, "model": PRO,
                 "attempts": 1, "elapsed": 1.0}
            )  # fmt: skip
            model = PRO
        events.append(
            {"event": "call_usage", "timestamp": t + 2, "call_id": call, "model": model,
             "input_tokens": 100, "output_tokens": 10, "thinking_tokens": 0,
             "cached_tokens": 0, "cost_usd": 0.001}
        )  # fmt: skip
    return events


def test_the_summary_is_written_in_chinese_too() -> None:
    data = analyse(bad_day())
    assert len(data.summary_zh) == len(data.summary)
    storm_calls = sum(1 for i in range(20, 310) if i % 5 < 3)
    assert data.summary_zh[0] == (
        f"UTC 14:02 至 14:31，{PRO} 对 60% 的请求返回了 503（290 个中的 {storm_calls} 个）。"
    )
    text = render_text(data, lang="zh")
    assert f"- {storm_calls} 个调用回退到 {FLASH}，并在那里得到了回答。" in text
    assert "延迟（秒）" in text
    assert render_text(data) == render_text(data, lang="en")
    assert render_text(analyse([]), lang="zh") == "没有事件：此文件中没有任何记录。\n"


def test_the_summary_says_when_what_and_how_much() -> None:
    data = analyse(bad_day())
    assert data.calls == 600
    storm_calls = sum(1 for i in range(20, 310) if i % 5 < 3)
    assert data.summary[0] == (
        f"Between 14:02 and 14:31 UTC {PRO} returned 503 to 60% of requests "
        f"({storm_calls} of {290})."
    )
    assert f"{storm_calls} calls fell back to {FLASH} and were answered there." in data.summary
    assert "Nothing was lost: all 600 calls succeeded." in data.summary
    assert data.flows == {(PRO, FLASH): storm_calls}
    assert data.total_spend == pytest.approx(0.6)
    assert data.latency[PRO][1] == 1.0
    assert data.latency[FLASH][1] == 2.0
    text = render_text(data)
    assert "returned 503 to 60%" in text


def test_failed_calls_are_told_by_error() -> None:
    failure = {
        "event": "call_failed", "timestamp": T0 + 400, "call_id": "x", "model": PRO,
        "error": "FallbackExhausted", "category": "overloaded",
    }  # fmt: skip
    events = [*bad_day()[:50], failure]
    data = analyse(events)
    assert any(line.endswith("calls failed (1 FallbackExhausted).") for line in data.summary)


def test_a_long_run_keeps_charts_small() -> None:
    events = [
        {"event": "attempt_started", "timestamp": T0 + i * 60.0, "call_id": str(i), "model": PRO}
        for i in range(24 * 60)
    ]
    data = analyse(events)
    assert len(data.columns) <= 180
    assert data.bucket == 480.0
    assert sum(data.attempts[PRO]) == 24 * 60


def test_an_empty_file_makes_a_page_that_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    data = analyse(load_events(empty))
    assert "No events" in render_html(data)
    assert render_text(data).startswith("No events")


def test_text_fields_are_escaped_in_the_page() -> None:
    events = bad_day()[:10]
    events.append(
        {"event": "alert", "timestamp": T0 + 30, "call_id": "", "model": PRO, "rule": "x",
         "since": T0, "what": "<script>alert(1)</script>", "next_step": "n",
         "what_zh": "w", "next_step_zh": "n", "severity": "warning"}
    )  # fmt: skip
    page = render_html(analyse(events))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"event": "a", "timestamp": 1}) + "\n[1, 2]\n")
    with pytest.raises(ConfigError, match=r"x.jsonl:2: an event needs"):
        load_events(path)


def test_a_tier_draws_the_tables_limits_beside_the_learned_ones() -> None:
    events = bad_day()[:40]
    events.append(
        {"event": "quota_notice", "timestamp": T0 + 30, "call_id": "", "model": PRO,
         "notice": "limit_learned", "metric": "rpm", "limit": 2}
    )  # fmt: skip
    data = analyse(events, tier="free")
    assert data.table_limits == {PRO: 5}
    page = render_html(data)
    assert f"free table 5/min: {PRO}" in page
    assert f"limit 2/min: {PRO}" in page
    assert analyse(events).table_limits == {}
