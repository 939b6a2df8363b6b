"""The HTML report: one self-contained page (inline CSS, PNGs by relative file name) per run.

Every field of summary.json, status.json and config.json is optional here: a partial summary, a crashed
run or an empty run still gives a readable report.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from html import escape
from pathlib import Path
from typing import Any, Iterable, Optional

from . import __version__
from .charts import CHARTS, draw_all
from .load import Run, as_dict, num

REPORT = "report.html"
STATE_CLASS = {"finished": "good", "failed": "bad", "aborted": "warn", "running": "info", "created": "info"}
LATENCY_KEYS = (("min", "min"), ("p50", "p50"), ("p75", "p75"), ("p90", "p90"), ("p95", "p95"),
                ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max"))


# ---------------------------------------------------------------------------------------------- formatting

def fmt_int(v: Any) -> str:
    """An integer count with thousands separators, or a dash."""
    n = num(v)
    return "—" if n is None else f"{int(round(n)):,}"


def fmt_ms(v: Any, unit: bool = False) -> str:
    """A latency in milliseconds with about three significant digits."""
    x = num(v)
    if x is None:
        return "—"
    text = f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"
    return text + (" ms" if unit else "")


def fmt_pct(v: Any) -> str:
    """A ratio (0..1) as a percentage."""
    x = num(v)
    if x is None:
        return "—"
    return "0 %" if x == 0 else f"{x * 100:.2f} %" if x >= 0.0001 else f"{x * 100:.4f} %"


def fmt_num(v: Any, digits: int = 1) -> str:
    """A real number with a fixed number of decimals and thousands separators."""
    x = num(v)
    return "—" if x is None else f"{x:,.{digits}f}"


def fmt_bytes(v: Any) -> str:
    """A byte count in binary units."""
    x = num(v)
    if x is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024 or unit == "GiB":
            return f"{x:,.0f} {unit}" if unit == "B" else f"{x:,.1f} {unit}"
        x /= 1024
    return "—"


def fmt_duration(v: Any) -> str:
    """Seconds as "12.3 s", "4 min 05 s" or "1 h 02 min"."""
    s = num(v)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_time(v: Any) -> str:
    """An RFC 3339 time shown as "2026-12-03 18:01:02 UTC"."""
    if not isinstance(v, str) or not v:
        return "—"
    try:
        t = _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return v


def _list(v: Any) -> list:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


# ------------------------------------------------------------------------------------------------ building

def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric_from: int = 1,
           foot: Optional[Iterable[str]] = None) -> str:
    """An HTML table; cells are already-escaped HTML; columns from *numeric_from* on are right-aligned."""
    def row(cells, tag="td"):
        return "<tr>" + "".join(
            f'<{tag}{" class=num" if i >= numeric_from else ""}>{c}</{tag}>' for i, c in enumerate(cells)) + "</tr>"
    html = f'<div class="scroll"><table><thead>{row(headers, "th")}</thead><tbody>'
    html += "".join(row(r) for r in rows) + "</tbody>"
    if foot is not None:
        html += f"<tfoot>{row(foot)}</tfoot>"
    return html + "</table></div>"


def _section(title: str, body: str, sid: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{body}</section>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{escape(text)}</span>'


def _card(label: str, value: str, sub: str = "", kind: str = "") -> str:
    sub_html = f'<div class="sub">{escape(sub)}</div>' if sub else ""
    return f'<div class="{f"card {kind}".strip()}"><div class="label">{escape(label)}</div>' \
           f'<div class="value">{escape(value)}</div>{sub_html}</div>'


def _cards(run: Run) -> str:
    s = run.summary
    tot, lat = as_dict(s.get("totals")), as_dict(s.get("latency_ms"))
    errors, rate = num(tot.get("errors")) or 0, num(tot.get("error_rate"))
    interrupted = num(tot.get("interrupted")) or 0
    dur = num(as_dict(s.get("run")).get("duration_s"))
    cards = [
        _card("Requests", fmt_int(tot.get("requests")),
              f"{fmt_int(tot.get('ok'))} ok · {fmt_int(errors)} errors"
              + (f" · {fmt_int(interrupted)} interrupted" if interrupted else "")),
        _card("Throughput", f"{fmt_num(tot.get('throughput_rps'))} req/s",
              f"{fmt_int(tot.get('iterations'))} iterations" if "iterations" in tot else ""),
        _card("Error rate", fmt_pct(rate), f"{fmt_int(errors)} errors",
              "bad" if (rate or 0) > 0.01 else "warn" if (rate or 0) > 0 else "good"),
        _card("Latency p50", fmt_ms(lat.get("p50"), True), f"mean {fmt_ms(lat.get('mean'), True)}"),
        _card("Latency p95", fmt_ms(lat.get("p95"), True), f"p90 {fmt_ms(lat.get('p90'), True)}"),
        _card("Latency p99", fmt_ms(lat.get("p99"), True), f"max {fmt_ms(lat.get('max'), True)}"),
        _card("vUsers (max)", fmt_int(tot.get("vus_max")), as_dict(s.get("run")).get("model") or ""),
        _card("Duration", fmt_duration(dur),
              f"{fmt_bytes(tot.get('bytes_received'))} received" if "bytes_received" in tot else ""),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _notices(run: Run) -> str:
    s, st = run.summary, run.status
    tot = as_dict(s.get("totals"))
    notes = []
    if s.get("final") is not True:
        notes.append(("warn", "This report was built from a <b>partial</b> summary (written "
                      f"{escape(fmt_time(s.get('generated_at')))}); the run had not finished, or was cut short."))
    if st.get("state") in ("failed", "aborted") and st.get("message"):
        notes.append(("bad", f"Run {escape(st['state'])}: {escape(str(st['message']))}"))
    if (num(tot.get("requests")) or 0) == 0:
        notes.append(("info", "This run completed <b>no requests</b>: there is no latency, throughput or "
                      "error data to show."))
    if run.timeseries_source == "timeseries.ndjson":
        notes.append(("info", "The time series was read from <code>timeseries.ndjson</code> "
                      "(summary.json carries none)."))
    return "".join(f'<div class="notice {k}">{m}</div>' for k, m in notes)


def _thresholds(run: Run) -> str:
    items = _list(run.summary.get("thresholds"))
    if not items:
        return ""
    rows = []
    for t in items:
        obs = num(t.get("observed"))
        metric = str(t.get("metric", ""))
        if obs is None:
            shown = "—"
        elif metric.startswith(("error_rate", "checks")):  # ratios
            shown = fmt_pct(obs)
        else:
            shown = fmt_ms(obs, True) if "_ms" in metric else f"{obs:,.4g}"
        rows.append([f"<code>{escape(metric)}</code>", f"<code>{escape(str(t.get('expr', '')))}</code>",
                     escape(shown), _badge("pass", "good") if t.get("ok") else _badge("FAIL", "bad")])
    return _section("Thresholds", _table(["metric", "condition", "observed", "result"], rows, numeric_from=2),
                    "thresholds")


def _charts(paths: dict) -> str:
    figs = []
    for name, _, alt in CHARTS:
        if paths.get(name):
            figs.append(f'<figure><img src="{escape(name)}" alt="{escape(alt)}" width="1100" height="450">'
                        f"</figure>")
        else:
            figs.append(f'<figure class="empty"><p>{escape(alt)}: no data for this chart.</p></figure>')
    return _section("Charts", "".join(figs), "charts")


def _latency_cells(lat: dict) -> list:
    return [fmt_ms(lat.get(k)) for k in ("p50", "p95", "p99", "max")]


def _endpoints(run: Run) -> str:
    eps = _list(run.summary.get("endpoints"))
    if not eps:
        return ""
    headers = ["endpoint", "method", "requests", "ok", "errors", "error rate", "req/s", "p50 (ms)", "p95 (ms)",
               "p99 (ms)", "max (ms)"]
    rows = [[escape(str(e.get("name", ""))), escape(str(e.get("method", ""))), fmt_int(e.get("requests")),
             fmt_int(e.get("ok")), fmt_int(e.get("errors")), fmt_pct(e.get("error_rate")),
             fmt_num(e.get("throughput_rps")), *_latency_cells(as_dict(e.get("latency_ms")))] for e in eps]
    tot, lat = as_dict(run.summary.get("totals")), as_dict(run.summary.get("latency_ms"))
    foot = ["<b>all</b>", "", fmt_int(tot.get("requests")), fmt_int(tot.get("ok")), fmt_int(tot.get("errors")),
            fmt_pct(tot.get("error_rate")), fmt_num(tot.get("throughput_rps")), *_latency_cells(lat)]
    return _section("Endpoints", _table(headers, rows, numeric_from=2, foot=foot), "endpoints")


def _latency_table(run: Run) -> str:
    blocks = [(label, as_dict(run.summary.get(key))) for key, label in (
        ("latency_ms", "all finished requests"), ("latency_ok_ms", "ok requests only"),
        ("latency_corrected_ms", "corrected (from intended start)"))]
    blocks = [(label, b) for label, b in blocks if b]
    if not blocks:
        return ""
    headers = ["latency (ms)", "count", "mean", "stdev"] + [label for _, label in LATENCY_KEYS]
    rows = [[escape(label), fmt_int(b.get("count")), fmt_ms(b.get("mean")), fmt_ms(b.get("stdev"))]
            + [fmt_ms(b.get(k)) for k, _ in LATENCY_KEYS] for label, b in blocks]
    return _section("Latency", _table(headers, rows), "latency")


def _counts_table(title: str, counts: dict, key_header: str, total: Optional[float] = None) -> str:
    items = [(k, num(v)) for k, v in counts.items() if num(v) is not None]
    if not items:
        return f'<div><h3>{escape(title)}</h3><p class="muted">none</p></div>'
    total = total or sum(v for _, v in items) or 1
    rows = [[f"<code>{escape(str(k))}</code>", fmt_int(v), fmt_pct(v / total)] for k, v in sorted(items)]
    return f"<div><h3>{escape(title)}</h3>{_table([key_header, 'count', 'share'], rows)}</div>"


def _breakdowns(run: Run) -> str:
    s = run.summary
    parts = [_counts_table("Status codes", as_dict(s.get("status_codes")), "status"),
             _counts_table("Errors by kind", as_dict(s.get("errors_by_kind")), "kind")]
    if as_dict(s.get("protocols")):
        parts.append(_counts_table("Protocols", as_dict(s.get("protocols")), "protocol"))
    return _section("Responses", f'<div class="grid">{"".join(parts)}</div>', "responses")


def _server_timing(run: Run) -> str:
    items = _list(run.summary.get("server_timing"))
    if not items:
        return ""
    headers = ["service", "count", "mean (ms)", "p50 (ms)", "p95 (ms)", "p99 (ms)", "max (ms)"]
    rows = []
    for st in items:
        lat = as_dict(st.get("latency_ms"))
        rows.append([escape(str(st.get("service", ""))), fmt_int(st.get("count")), fmt_ms(lat.get("mean")),
                     *_latency_cells(lat)])
    note = '<p class="muted">From the <code>Server-Timing</code> response headers of the gateway.</p>'
    return _section("Server timing", note + _table(headers, rows), "server-timing")


def _checks(run: Run) -> str:
    items = _list(run.summary.get("checks"))
    if not items:
        return ""
    rows = []
    for c in items:
        p, f = num(c.get("passes")) or 0, num(c.get("fails")) or 0
        rate = p / (p + f) if p + f else None
        rows.append([escape(str(c.get("name", ""))), escape(str(c.get("step") or "")), fmt_int(p), fmt_int(f),
                     fmt_pct(rate) if rate is not None else "—",
                     _badge("pass", "good") if not f else _badge("fails", "bad")])
    return _section("Checks", _table(["check", "step", "passes", "fails", "pass rate", ""], rows,
                                     numeric_from=2), "checks")


def _load_text(load: dict) -> str:
    """A one-line description of the load model of a config."""
    if not load:
        return "—"
    model = load.get("model", "?")
    if "iterations" in load:
        return f"{model}: {load.get('vus')} vUsers × {load.get('iterations')} iterations"
    stages = [x for x in load.get("stages", []) if isinstance(x, dict)]
    key, unit = ("rate", "/s") if model == "open" else ("target", " vUsers")
    text = ", ".join(f"{x.get('duration')} → {x.get(key)}{unit}" for x in stages)
    extra = f" (max {load['max_vus']} vUsers)" if "max_vus" in load else ""
    return f"{model}: {text}{extra}" if text else str(model)


def _details(run: Run) -> str:
    s, st, cfg = run.summary, run.status, run.config
    r, tgt, tool = as_dict(s.get("run")), as_dict(cfg.get("target")), as_dict(s.get("tool"))
    tot = as_dict(s.get("totals"))
    pairs = [
        ("Run id", s.get("run_id") or st.get("run_id")),
        ("State", st.get("state") or r.get("state")),
        ("Created", fmt_time(st.get("created_at"))),
        ("Started", fmt_time(r.get("started_at") or st.get("started_at"))),
        ("Ended", fmt_time(r.get("ended_at") or st.get("ended_at"))),
        ("Duration", fmt_duration(r.get("duration_s"))),
        ("Load", _load_text(as_dict(cfg.get("load")))),
        ("Target", tgt.get("base_url")),
        ("HTTP version", tgt.get("http_version")),
        ("Timeout", tgt.get("timeout")),
        ("Data sent / received", f"{fmt_bytes(tot.get('bytes_sent'))} / {fmt_bytes(tot.get('bytes_received'))}"
         if "bytes_sent" in tot or "bytes_received" in tot else None),
        ("Retries (stale connections)", fmt_int(tot.get("retries")) if "retries" in tot else None),
        ("Dropped iterations", fmt_int(tot.get("dropped_iterations")) if tot.get("dropped_iterations") else None),
        ("Agent exit code", st.get("exit_code")),
        ("Message", st.get("message")),
        ("Tool", f"{tool.get('name', '')} {tool.get('version', '')}".strip() or None),
        ("Summary written", fmt_time(s.get("generated_at"))),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in pairs
                 if v is not None and v != "" and v != "—")
    body = f"<dl>{dl}</dl>"
    if cfg:
        body += ("<details><summary>Configuration (config.json)</summary><pre>"
                 f"{escape(json.dumps(cfg, indent=2, ensure_ascii=False))}</pre></details>")
    return _section("Run", body, "run")


CSS = """
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --accent:#2563eb;
        --good:#047857; --good-bg:#ecfdf5; --bad:#b91c1c; --bad-bg:#fef2f2; --warn:#b45309; --warn-bg:#fffbeb;
        --info:#1d4ed8; --info-bg:#eff6ff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); font:14px/1.5 system-ui, -apple-system, "Segoe UI",
       Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1180px; margin:0 auto; padding:24px 24px 48px; }
header { display:flex; flex-wrap:wrap; align-items:baseline; gap:12px; margin-bottom:4px; }
h1 { font-size:26px; margin:0; }
h2 { font-size:18px; margin:0 0 12px; padding-bottom:6px; border-bottom:1px solid var(--line); }
h3 { font-size:14px; margin:0 0 8px; color:#374151; }
.subtitle { color:var(--muted); margin:0 0 20px; }
code { font:12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 20px; margin:18px 0; }
.badge { display:inline-block; padding:1px 10px; border-radius:999px; font-size:12px; font-weight:600;
         letter-spacing:.02em; border:1px solid currentColor; }
.good { color:var(--good); } .bad { color:var(--bad); } .warn { color:var(--warn); } .info { color:var(--info); }
.badge.good { background:var(--good-bg); } .badge.bad { background:var(--bad-bg); }
.badge.warn { background:var(--warn-bg); } .badge.info { background:var(--info-bg); }
.notice { border-radius:8px; padding:10px 14px; margin:10px 0; border:1px solid; }
.notice.bad { background:var(--bad-bg); } .notice.warn { background:var(--warn-bg); }
.notice.info { background:var(--info-bg); }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(175px, 1fr)); gap:12px; margin:18px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:12px 14px; color:var(--fg); }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
.card .value { font-size:22px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }
.card .sub { color:var(--muted); font-size:12px; }
.card.good .value { color:var(--good); } .card.bad .value { color:var(--bad); }
.card.warn .value { color:var(--warn); }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:left; white-space:nowrap; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.03em;
     background:#f3f4f6; }
td.num, th.num { text-align:right; }
tbody tr:hover { background:#f9fafb; }
tfoot td { font-weight:600; border-top:2px solid #d1d5db; border-bottom:none; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(260px, 1fr)); gap:20px; }
figure { margin:0 0 16px; } figure:last-child { margin-bottom:0; }
figure img { display:block; max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figure.empty p { color:var(--muted); background:var(--bg); border:1px dashed var(--line); border-radius:6px;
                 padding:16px; margin:0; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 20px; margin:0; }
dt { color:var(--muted); } dd { margin:0; overflow-wrap:anywhere; }
details { margin-top:14px; } summary { cursor:pointer; color:var(--accent); }
pre { background:#f3f4f6; border-radius:6px; padding:12px; overflow:auto; font-size:12px; }
.muted { color:var(--muted); }
.scroll { overflow-x:auto; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
"""


def render_html(run: Run, charts: dict) -> str:
    """The report page for *run*; *charts* maps chart file names to their path (None: not drawn)."""
    s, st = run.summary, run.status
    r = as_dict(s.get("run"))
    title = r.get("config_name") or run.config.get("name") or s.get("run_id") or run.path.name
    state = st.get("state") or r.get("state") or "unknown"
    badges = _badge(state, STATE_CLASS.get(state, "info"))
    if s.get("final") is not True:
        badges += " " + _badge("partial", "warn")
    thresholds = _list(s.get("thresholds"))
    if thresholds:
        failed = sum(1 for t in thresholds if not t.get("ok"))
        badges += " " + (_badge(f"{failed} threshold(s) failed", "bad") if failed
                         else _badge("thresholds passed", "good"))
    subtitle = " · ".join(escape(x) for x in (
        str(s.get("run_id") or run.path.name), fmt_time(r.get("started_at") or st.get("started_at")),
        fmt_duration(r.get("duration_s")), str(as_dict(run.config.get("target")).get("base_url") or "")) if x)
    body = "".join([
        f"<header><h1>{escape(str(title))}</h1>{badges}</header>",
        f'<p class="subtitle">{subtitle}</p>',
        _notices(run), _cards(run), _thresholds(run), _charts(charts),
        _endpoints(run), _latency_table(run),
        _breakdowns(run), _server_timing(run), _checks(run), _details(run),
        f"<footer>Generated by userflux-analytics {escape(__version__)} on "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}</footer>",
    ])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Userflux report — {escape(str(title))}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body><main>\n{body}\n</main></body>\n</html>\n")


def write_report(run: Run, out_dir: Path) -> Path:
    """Draw the charts and write report.html into *out_dir* (created if needed); return the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = draw_all(run, out_dir)
    path = out_dir / REPORT
    tmp = out_dir / f".{REPORT}.tmp"
    tmp.write_text(render_html(run, charts), encoding="utf-8")
    os.replace(tmp, path)
    return path.resolve()
