"""The report as one self-contained HTML page: inline styles, inline SVG charts, and a
few lines of inline script (legend highlighting). It loads nothing from the network."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from html import escape

from gemini_guard.telemetry.report.analysis import ReportData, clock_text

__all__ = ["render_html"]

_PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d")
_CATEGORY_COLORS = {
    "overloaded": "#dc2626",
    "server_error": "#991b1b",
    "bad_gateway": "#f87171",
    "rate_limited": "#f59e0b",
    "daily_quota_exhausted": "#b45309",
    "no_quota": "#78350f",
    "deadline_exceeded": "#7c3aed",
    "timeout": "#a78bfa",
    "network": "#64748b",
}
_STATE_COLORS = {"closed": "#16a34a", "half_open": "#f59e0b", "open": "#dc2626"}
_W, _H = 960, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 30, 34

_STYLE = """
:root { color-scheme: light; --ink:#111827; --muted:#6b7280; --line:#e5e7eb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
  "PingFang SC","Microsoft YaHei",sans-serif; color:var(--ink); background:#f9fafb; }
main { max-width:1040px; margin:0 auto; padding:24px 16px 48px; }
h1 { font-size:24px; margin:0 0 4px; } h2 { font-size:18px; margin:0 0 8px; }
.sub { color:var(--muted); margin:0 0 16px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px;
  padding:16px 18px; margin:0 0 16px; }
.summary { border-left:5px solid #2563eb; }
.summary li { margin:2px 0; }
.bad { border-left-color:#dc2626; }
.tiles { display:flex; flex-wrap:wrap; gap:12px; margin:0 0 16px; }
.tile { flex:1 1 140px; background:#fff; border:1px solid var(--line); border-radius:10px;
  padding:10px 14px; }
.tile b { display:block; font-size:22px; } .tile span { color:var(--muted); font-size:13px; }
svg { width:100%; height:auto; display:block; }
svg text { font-size:12px; fill:#374151; } .axis { stroke:#9ca3af; } .grid { stroke:#f3f4f6; }
.legend { display:flex; flex-wrap:wrap; gap:4px 16px; margin:6px 0 0; padding:0;
  list-style:none; font-size:13px; }
.legend li { cursor:default; } .legend i { display:inline-block; width:10px; height:10px;
  border-radius:2px; margin-right:6px; vertical-align:baseline; }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
.dim { opacity:0.15; }
.zh { color:var(--muted); }
@media (max-width:600px) { body { font-size:14px; } .tile b { font-size:18px; } }
"""

# Highlights one series when its legend entry is hovered; marks the page as loaded.
_SCRIPT = """
(function () {
  document.querySelectorAll(".legend li[data-series]").forEach(function (item) {
    var chart = item.closest("section");
    function mark(on) {
      chart.querySelectorAll("[data-series]").forEach(function (el) {
        if (el.tagName !== "LI") {
          el.classList.toggle("dim", on && el.dataset.series !== item.dataset.series);
        }
      });
    }
    item.addEventListener("mouseenter", function () { mark(true); });
    item.addEventListener("mouseleave", function () { mark(false); });
  });
  document.documentElement.dataset.ready = "1";
})();
"""


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _x(data: ReportData, index: float) -> float:
    width = _W - _LEFT - _RIGHT
    return _LEFT + width * index / max(1, len(data.columns))


def _y(value: float, top: float) -> float:
    height = _H - _TOP - _BOTTOM
    return _TOP + height * (1 - (value / top if top else 0))


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step:
            return float(step)
    return float(value * 1.1)


def _axes(data: ReportData, top: float, unit: str) -> list[str]:
    parts = [
        f'<line class="axis" x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{_W - _RIGHT}" '
        f'y2="{_H - _BOTTOM}"/>'
    ]
    for fraction in (0, 0.5, 1):
        y = _y(top * fraction, top)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(top * fraction)}</text>'
        )
    parts.append(f'<text x="{_LEFT - 44}" y="12" text-anchor="start">{escape(unit)}</text>')
    n = len(data.columns)
    step = max(1, round(n / 8))
    for i in range(0, n, step):
        parts.append(
            f'<text x="{_x(data, i):.1f}" y="{_H - _BOTTOM + 18}" text-anchor="middle">'
            f"{clock_text(data.columns[i])}</text>"
        )
    return parts


def _svg(name: str, label: str, body: Sequence[str], height: int = _H) -> str:
    return (
        f'<svg data-chart="{name}" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _legend(items: Sequence[tuple[str, str, str]]) -> str:
    """(series key, color, text) per entry."""
    return (
        '<ul class="legend">'
        + "".join(
            f'<li data-series="{escape(key)}"><i style="background:{color}"></i>{escape(text)}</li>'
            for key, color, text in items
        )
        + "</ul>"
    )


def _rate_chart(data: ReportData) -> str:
    per_minute = 60.0 / data.bucket
    top_value = 0.0
    for values in data.attempts.values():
        top_value = max(top_value, max(values, default=0) * per_minute)
    for learned in data.limits.values():
        top_value = max(top_value, max(limit for _, limit in learned))
    top_value = max(top_value, *data.table_limits.values(), 0)
    top = _nice_top(top_value * 1.05)
    body = _axes(data, top, "req/min")
    legend = []
    labels: dict[int, list[str]] = {}  # limit -> models paced by it (one label each)
    table_labels: dict[int, list[str]] = {}
    for index, model in enumerate(data.models):
        color = _PALETTE[index % len(_PALETTE)]
        values = data.attempts.get(model, [])
        points = " ".join(
            f"{_x(data, i + 0.5):.1f},{_y(v * per_minute, top):.1f}" for i, v in enumerate(values)
        )
        peak = max(values, default=0) * per_minute
        body.append(
            f'<polyline data-series="{escape(model)}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{points}"><title>{escape(model)}: {sum(values)} '
            f"requests</title></polyline>"
        )
        text = f"{model}: {sum(values):,} requests, peak {_num(peak)}/min"
        limits = data.limits.get(model)
        if limits:
            start = (limits[0][0] - data.columns[0]) / data.bucket
            x0 = _x(data, start)
            y = _y(limits[-1][1], top)
            body.append(
                f'<line data-series="{escape(model)}" x1="{x0:.1f}" y1="{y:.1f}" '
                f'x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="{color}" stroke-dasharray="6 4">'
                f"<title>{escape(model)} limit {limits[-1][1]} RPM</title></line>"
            )
            labels.setdefault(limits[-1][1], []).append(model)
            text += f" (limit learned: {limits[-1][1]}/min)"
        table = data.table_limits.get(model)
        if table is not None:
            y = _y(table, top)
            body.append(
                f'<line data-series="{escape(model)}" x1="{_LEFT}" y1="{y:.1f}" '
                f'x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="{color}" stroke-opacity="0.45" '
                f'stroke-dasharray="2 3"><title>{escape(model)}: {table}/min in the '
                f"{escape(str(data.tier))} table</title></line>"
            )
            table_labels.setdefault(table, []).append(model)
            text += f" ({data.tier} table: {table}/min)"
        legend.append((model, color, text))
    for limit, named in table_labels.items():
        body.append(
            f'<text x="{_LEFT + 4}" y="{_y(limit, top) - 4:.1f}" fill-opacity="0.7">'
            f"{escape(str(data.tier))} table {limit}/min: {escape(', '.join(named))}</text>"
        )
    for limit, paced in labels.items():
        body.append(
            f'<text x="{_W - _RIGHT - 4}" y="{_y(limit, top) - 4:.1f}" text-anchor="end">'
            f"limit {limit}/min: {escape(', '.join(paced))}</text>"
        )
    return _svg("requests", "requests per minute by model", body) + _legend(legend)


def _error_chart(data: ReportData) -> str:
    if not data.errors:
        return '<p class="sub">No failed requests.</p>'
    n = len(data.columns)
    totals = [sum(values[i] for values in data.errors.values()) for i in range(n)]
    top = _nice_top(max(totals, default=0) * 1.05)
    body = _axes(data, top, f"errors/{_num(data.bucket / 60)} min")
    width = max(1.0, (_W - _LEFT - _RIGHT) / max(1, n) - 1)
    legend = []
    stack = [0] * n
    categories = sorted(data.errors, key=lambda c: -sum(data.errors[c]))
    for index, category in enumerate(categories):
        color = _CATEGORY_COLORS.get(category, _PALETTE[index % len(_PALETTE)])
        for i, value in enumerate(data.errors[category]):
            if not value:
                continue
            y_top = _y(stack[i] + value, top)
            y_bottom = _y(stack[i], top)
            body.append(
                f'<rect data-series="{escape(category)}" x="{_x(data, i):.1f}" y="{y_top:.1f}" '
                f'width="{width:.1f}" height="{y_bottom - y_top:.1f}" fill="{color}">'
                f"<title>{clock_text(data.columns[i])} {escape(category)}: {value}</title></rect>"
            )
            stack[i] += value
        legend.append((category, color, f"{category}: {sum(data.errors[category]):,}"))
    return _svg("errors", "failed requests over time by category", body) + _legend(legend)


def _bars(name: str, rows: Sequence[tuple[str, float, str]], color: str) -> str:
    """Horizontal bars: (label, value, value text) per row."""
    if not rows:
        return '<p class="sub">None.</p>'
    top = max(value for _, value, _ in rows) or 1.0
    row_h = 26
    height = row_h * len(rows) + 8
    label_w = 330
    body = []
    for i, (label, value, text) in enumerate(rows):
        y = 4 + i * row_h
        width = (_W - label_w - 120) * value / top
        body.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{max(1.0, width):.1f}" height="{row_h - 8}" '
            f'rx="3" fill="{color}"><title>{escape(label)}: {escape(text)}</title></rect>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 17}">{escape(text)}</text>'
        )
    return _svg(name, name, body, height=height)


def _latency(data: ReportData) -> str:
    if not data.latency:
        return '<p class="sub">No successful calls.</p>'
    rows = []
    bars = []
    for model, (n, p50, p90, p99) in data.latency.items():
        rows.append(
            f"<tr><td>{escape(model)}</td><td class='n'>{n:,}</td><td class='n'>{p50:.2f}</td>"
            f"<td class='n'>{p90:.2f}</td><td class='n'>{p99:.2f}</td></tr>"
        )
        bars.append((f"{model} p50", p50, f"{p50:.2f} s"))
        bars.append((f"{model} p99", p99, f"{p99:.2f} s"))
    table = (
        "<table><tr><th>model</th><th class='n'>calls</th><th class='n'>p50 s</th>"
        "<th class='n'>p90 s</th><th class='n'>p99 s</th></tr>" + "".join(rows) + "</table>"
    )
    return _bars("latency", bars, "#0891b2") + table


def _flows(data: ReportData) -> str:
    rows = [
        (f"{src} → {dst}", float(n), f"{n:,} call{'s' if n != 1 else ''}")
        for (src, dst), n in sorted(data.flows.items(), key=lambda kv: -kv[1])
    ]
    return _bars("fallbacks", rows, "#7c3aed")


def _spend(data: ReportData) -> str:
    if not data.spend:
        return '<p class="sub">No priced usage in this file.</p>'
    days = sorted({day for day, _ in data.spend})
    models = sorted({model for _, model in data.spend})
    head = "".join(f"<th class='n'>{escape(m)}</th>" for m in models)
    rows = []
    for day in days:
        cells = "".join(f"<td class='n'>${data.spend.get((day, m), 0.0):.4f}</td>" for m in models)
        total = sum(data.spend.get((day, m), 0.0) for m in models)
        rows.append(f"<tr><td>{day}</td>{cells}<td class='n'><b>${total:.4f}</b></td></tr>")
    by_model = [(m, sum(v for (_, mm), v in data.spend.items() if mm == m)) for m in models]
    bars = _bars("spend", [(m, v, f"${v:.4f}") for m, v in by_model], "#16a34a")
    tokens = ", ".join(f"{k} {v:,}" for k, v in data.tokens.items())
    return (
        bars
        + f"<table><tr><th>day (Pacific)</th>{head}<th class='n'>total</th></tr>"
        + "".join(rows)
        + "</table>"
        + (f'<p class="sub">Tokens billed: {escape(tokens)}.</p>' if tokens else "")
    )


def _breakers(data: ReportData) -> str:
    if not data.breaker:
        return '<p class="sub">No breaker opened: every model stayed closed.</p>'
    lane = 30
    height = lane * len(data.breaker) + _BOTTOM + 8
    label_w = 170
    span = max(1.0, data.columns[-1] + data.bucket - data.columns[0])
    width = _W - label_w - _RIGHT

    def x(wall: float) -> float:
        return label_w + width * (wall - data.columns[0]) / span

    body = []
    for i, (model, changes) in enumerate(data.breaker.items()):
        y = 4 + i * lane
        body.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(model)}</text>'
        )
        timeline = [(data.columns[0], "closed"), *changes, (data.columns[-1] + data.bucket, "")]
        for (start, state), (end, _) in itertools.pairwise(timeline):
            color = _STATE_COLORS.get(state, "#9ca3af")
            body.append(
                f'<rect data-state="{state}" x="{x(start):.1f}" y="{y + 4}" '
                f'width="{max(1.0, x(end) - x(start)):.1f}" height="{lane - 10}" fill="{color}">'
                f"<title>{escape(model)} {state} from "
                f"{clock_text(start, seconds=True)}</title></rect>"
            )
    axis_y = lane * len(data.breaker) + 20
    for i in range(0, len(data.columns), max(1, round(len(data.columns) / 8))):
        body.append(
            f'<text x="{x(data.columns[i]):.1f}" y="{axis_y}" text-anchor="middle">'
            f"{clock_text(data.columns[i])}</text>"
        )
    legend = [(s, c, s.replace("_", "-")) for s, c in _STATE_COLORS.items()]
    return _svg("breakers", "circuit breaker states over time", body, height=height) + _legend(
        legend
    )


def _alerts(data: ReportData) -> str:
    if not data.alerts:
        return '<p class="sub">No alerts.</p>'
    rows = []
    for a in data.alerts:
        rows.append(
            f"<tr><td>{clock_text(float(a.get('since') or a['timestamp']))}</td>"
            f"<td>{escape(str(a.get('rule')))}</td>"
            f"<td>{escape(str(a.get('what')))}<br><span class='zh'>{escape(str(a.get('what_zh')))}"
            f"</span></td><td>{escape(str(a.get('next_step')))}<br><span class='zh'>"
            f"{escape(str(a.get('next_step_zh')))}</span></td></tr>"
        )
    return (
        "<table><tr><th>since (UTC)</th><th>rule</th><th>what happened</th><th>next step</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render_html(data: ReportData, *, title: str = "gemini-guard report") -> str:
    """The page for `data` (see `analysis.analyse`)."""
    if data.columns:
        day = dt.datetime.fromtimestamp(data.start, dt.UTC).strftime("%Y-%m-%d")
        when = f"{day}, {clock_text(data.start)}–{clock_text(data.end)} UTC"
    else:
        when = "no events"
    failed = sum(data.failed.values())
    bad = failed or data.episodes or data.alerts
    tiles = [
        (f"{data.calls:,}", "calls"),
        (f"{data.succeeded:,}", "succeeded"),
        (f"{failed:,}", "failed"),
        (f"{data.total_attempts:,}", "requests sent"),
        (f"{sum(data.fell_back.values()):,}", "answered after fallback"),
        (f"${data.total_spend:.4f}", "spent"),
    ]
    sections = [
        ("Requests per minute, and the limits learned", _rate_chart(data)),
        ("Error mix over time", _error_chart(data)),
        ("Latency of successful calls (clock seconds, waits included)", _latency(data)),
        ("Fallback flows", _flows(data)),
        ("Spend per model and day (USD at the model table's prices)", _spend(data)),
        ("Circuit breakers", _breakers(data)),
        ("Alerts", _alerts(data)),
    ]
    summary = "".join(f"<li>{escape(line)}</li>" for line in data.summary)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p class='sub'>{escape(when)}</p>"
        f"<section class='summary{' bad' if bad else ''}' id='summary'><h2>What happened</h2>"
        f"<ul>{summary}</ul></section>"
        "<div class='tiles'>"
        + "".join(f"<div class='tile'><b>{v}</b><span>{k}</span></div>" for v, k in tiles)
        + "</div>"
        + "".join(f"<section><h2>{escape(h)}</h2>{body}</section>" for h, body in sections)
        + f"</main><script>{_SCRIPT}</script></body></html>"
    )
