"""PNG charts of a run, drawn with matplotlib's Agg backend (no display, no pyplot global state).

Each ``draw_*`` function takes a :class:`~userflux_analytics.load.Run` and its :class:`Series` (None when the
run has no time series), writes one PNG atomically and returns its path, or returns None when the run has
no data for that chart.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (FuncFormatter, LogLocator, MaxNLocator, NullFormatter,  # noqa: E402
                               PercentFormatter)

from .load import Run, as_dict, iter_ndjson, num  # noqa: E402

SIZE_IN, DPI = (11, 4.5), 100  # 1100 x 450 pixels
MAX_POINTS = 400  # longer time series are merged into this many windows, or lines turn into a blur
BLUE, GRAY, RED, GREEN, AMBER, PURPLE = "#2563eb", "#6b7280", "#dc2626", "#059669", "#d97706", "#7c3aed"
INK = "#111827"
KIND_COLORS = {"http_status": RED, "timeout": AMBER, "connect_refused": PURPLE, "reset": "#db2777",
               "dns": "#0891b2", "tls": "#4b5563"}
EXTRA_COLORS = ["#0d9488", "#9333ea", "#ea580c", "#65a30d", "#be123c", "#1d4ed8"]
STYLE = {
    "font.size": 10, "axes.titlesize": 12, "axes.titleweight": "bold", "axes.titlepad": 10,
    "axes.labelsize": 10, "axes.edgecolor": "#9ca3af", "axes.labelcolor": "#1f2937",
    "xtick.color": "#374151", "ytick.color": "#374151", "legend.fontsize": 9, "legend.framealpha": 0.9,
    "legend.edgecolor": "#d1d5db", "grid.color": "#e5e7eb", "grid.linewidth": 0.8,
}
TIME_LABEL = "time since start (s)"
PERCENTILES = (("p50", GREEN, 2.0), ("p95", AMBER, 1.8), ("p99", RED, 1.6))


def _figure() -> Figure:
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    fig.patch.set_facecolor("white")
    return fig


def _style(ax) -> None:
    ax.grid(True, which="major")
    ax.set_axisbelow(True)
    ax.spines["top"].set_visible(False)


def _save(fig: Figure, path: Path) -> Path:
    """Save *fig* as PNG atomically (temporary file in the same folder, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    os.replace(tmp, path)
    return path


@dataclass
class Series:
    """The time series as arrays, one entry per bucket (or per window of merged buckets on long runs).

    ``t`` is the start of each bucket in seconds since the run start, ``dur`` its length; ``vus`` the active
    vUsers at its end; ``latency`` maps p50/p95/p99 to arrays (NaN where nothing completed); ``kinds`` maps
    error kinds to error counts when they are known per bucket; ``window`` is the merge factor.
    """

    t: np.ndarray
    dur: np.ndarray
    vus: np.ndarray
    requests: np.ndarray
    ok: np.ndarray
    errors: np.ndarray
    latency: dict
    kinds: dict
    window: int = 1

    @property
    def mid(self) -> np.ndarray:
        return self.t + self.dur / 2

    @property
    def end(self) -> np.ndarray:
        return self.t + self.dur

    @property
    def marker(self) -> Optional[str]:
        return "o" if len(self.t) < 4 else None

    def bucket_text(self) -> str:
        """"per 1 s bucket" or "per 27 s window": how much time one point stands for."""
        width = float(np.median(self.dur)) if len(self.dur) else 1.0
        return f"per {width:.3g} s " + ("bucket" if self.window == 1 else "window")

    def merged(self, max_points: int = MAX_POINTS) -> "Series":
        """This series with consecutive buckets merged so that at most *max_points* remain.

        Counts add up; vUsers take the window's last value; a window's percentile is the mean of its
        buckets' percentiles weighted by their requests (an approximation, good enough to see trends).
        """
        k = math.ceil(len(self.t) / max_points) if len(self.t) > max_points else 1
        if k == 1:
            return self
        starts = np.arange(0, len(self.t), k)
        ends = np.minimum(starts + k, len(self.t)) - 1

        def add(a):
            return np.add.reduceat(a, starts)

        latency = {}
        for key, values in self.latency.items():
            w = np.where(np.isfinite(values), self.requests, 0.0)
            weighted = add(np.nan_to_num(values) * w)
            total = add(w)
            latency[key] = np.divide(weighted, total, out=np.full(len(starts), np.nan), where=total > 0)
        return Series(self.t[starts], add(self.dur), self.vus[ends], add(self.requests), add(self.ok),
                      add(self.errors), latency, {n: add(c) for n, c in self.kinds.items()}, k)


def series_of(run: Run) -> Optional[Series]:
    """The run's time series as a :class:`Series` merged for display, or None when there is none."""
    ts = run.timeseries
    if not ts:
        return None

    def col(key, default=0.0):
        return np.array([num(b.get(key)) if num(b.get(key)) is not None else default for b in ts], dtype=float)

    dur = col("duration_s", 1.0)
    dur[dur <= 0] = 1.0
    requests = col("requests")
    lat = [b.get("latency_ms") if isinstance(b.get("latency_ms"), dict) else {} for b in ts]
    latency = {key: np.array([num(x.get(key)) if num(x.get(key)) is not None else np.nan for x in lat])
               for key, _, _ in PERCENTILES}
    s = Series(col("t_s"), dur, col("vus"), requests, col("ok"), col("errors"), latency, {})
    s.kinds = _errors_by_kind(run, s)
    return s.merged()


def _errors_by_kind(run: Run, s: Series) -> dict:
    """{kind: errors per bucket} from the buckets' errors_by_kind, else from samples.ndjson, else {}."""
    kinds = {}
    if any(isinstance(b.get("errors_by_kind"), dict) for b in run.timeseries):
        for i, b in enumerate(run.timeseries):
            for k, v in (b.get("errors_by_kind") or {}).items():
                kinds.setdefault(str(k), np.zeros(len(s.t)))[i] += num(v) or 0
        return kinds
    if run.samples_path is None:
        return {}
    for line in iter_ndjson(run.samples_path):
        x = line.value
        if not isinstance(x, dict) or x.get("outcome") != "error" or num(x.get("t_s")) is None:
            continue
        i = int(np.searchsorted(s.t, x["t_s"], side="right")) - 1
        if 0 <= i < len(s.t) and x["t_s"] <= s.end[i] + 1e-9:
            kinds.setdefault(str(x.get("error") or "error"), np.zeros(len(s.t)))[i] += 1
    return kinds


def _time_axis(ax, s: Series) -> None:
    ax.set_xlim(0, max(1.0, float(s.end[-1])))
    ax.set_xlabel(TIME_LABEL)


def _twin(ax):
    ax2 = ax.twinx()
    ax2.spines["top"].set_visible(False)
    return ax2


def _legend(ax, *axes, **kw) -> None:
    """One legend on *ax* for the artists of every axis given."""
    handles = [h for a in (ax, *axes) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], **kw)


def draw_throughput(run: Run, s: Optional[Series], path: Path) -> Optional[Path]:
    """Requests per second (left axis) and active vUsers (right axis) over time."""
    if s is None:
        return None
    rps = s.requests / s.dur
    with matplotlib.rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        ax.plot(s.mid, rps, color=BLUE, lw=2, marker=s.marker, label="requests / s")
        ax.fill_between(s.mid, rps, color=BLUE, alpha=0.10, lw=0)
        ax.set_ylabel("requests / s")
        ax.set_ylim(0, max(1.0, float(rps.max())) * 1.18)
        _time_axis(ax, s)
        ax2 = _twin(ax)
        ax2.plot(s.end, s.vus, color=GRAY, lw=1.8, ls="--", marker=s.marker, label="active vUsers")
        ax2.set_ylabel("active vUsers")
        ax2.set_ylim(0, max(1.0, float(s.vus.max())) * 1.18)
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        _legend(ax, ax2, loc="upper left")
        ax.set_title(f"Throughput and active vUsers ({s.bucket_text()})")
        fig.tight_layout()
        return _save(fig, path)


def _latency_thresholds(run: Run) -> list:
    """(label, limit in ms) of the unscoped ``latency_ms`` thresholds of the config that are upper bounds."""
    out = []
    thresholds = run.config.get("thresholds")
    for expr in thresholds.get("latency_ms", []) if isinstance(thresholds, dict) else []:
        text = expr.get("expr") if isinstance(expr, dict) else expr
        m = re.fullmatch(r"\s*(p\d+(?:[._]\d+)?|max|mean|avg|med)\s*(<=|<)\s*([0-9.]+)\s*", str(text or ""))
        if m:
            out.append((f"{m.group(1)} {m.group(2)} {m.group(3)}", float(m.group(3))))
    return out


def draw_latency(run: Run, s: Optional[Series], path: Path) -> Optional[Path]:
    """p50, p95 and p99 latency (ms) over time, with the latency thresholds as dashed lines."""
    if s is None or not any(np.isfinite(v).any() for v in s.latency.values()):
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        top = 0.0
        for key, color, lw in PERCENTILES:
            y = s.latency[key]
            if np.isfinite(y).any():
                ax.plot(s.mid, y, color=color, lw=lw, marker=s.marker, label=key)
                top = max(top, float(np.nanmax(y)))
        for label, limit in _latency_thresholds(run):
            ax.axhline(limit, color=INK, lw=1.1, ls=(0, (5, 4)), alpha=0.7, label=f"threshold {label}")
            top = max(top, limit)
        ax.set_ylim(0, max(top, 1e-3) * 1.15)
        ax.set_ylabel("latency (ms)")
        _time_axis(ax, s)
        ax.legend(loc="upper left", ncol=4)
        ax.set_title(f"Latency percentiles over time ({s.bucket_text()})")
        fig.tight_layout()
        return _save(fig, path)


def _kind_color(kind: str, index: int) -> str:
    return KIND_COLORS.get(kind, EXTRA_COLORS[index % len(EXTRA_COLORS)])


def draw_errors(run: Run, s: Optional[Series], path: Path) -> Optional[Path]:
    """Errors per second over time (stacked by kind when known) with the error rate, and totals by kind."""
    if s is None:
        return None
    totals = {k: num(v) for k, v in as_dict(run.summary.get("errors_by_kind")).items() if num(v)}
    with matplotlib.rc_context(STYLE):
        fig = _figure()
        gs = fig.add_gridspec(1, 2, width_ratios=[3, 1])
        ax = fig.add_subplot(gs[0])
        _style(ax)
        width = s.dur * 0.85
        bottom = np.zeros(len(s.t))
        stacks = sorted(s.kinds.items(), key=lambda kv: -kv[1].sum()) or [("errors / s", s.errors)]
        for i, (kind, counts) in enumerate(stacks):
            ax.bar(s.t, counts / s.dur, width, bottom=bottom, align="edge", color=_kind_color(kind, i), label=kind)
            bottom = bottom + counts / s.dur
        peak = float(bottom.max())
        ax.set_ylim(0, max(1.0, peak) * 1.18)
        ax.yaxis.set_major_locator(MaxNLocator(integer=peak >= 1, nbins=6))
        ax.set_ylabel("errors / s")
        _time_axis(ax, s)
        finished = s.ok + s.errors
        rate = np.divide(s.errors * 100, finished, out=np.full(len(s.t), np.nan), where=finished > 0)
        ax2 = _twin(ax)
        ax2.plot(s.mid, rate, color=INK, lw=1.3, marker="." if len(s.t) <= 60 else None, label="error rate (%)")
        ax2.set_ylim(0, max(1.0, float(np.nanmax(rate)) if np.isfinite(rate).any() else 1.0) * 1.18)
        ax2.yaxis.set_major_formatter(PercentFormatter(decimals=None))
        ax2.set_ylabel("error rate")
        _legend(ax, ax2, loc="upper left", ncol=3)
        if not s.errors.any():
            ax.text(0.5, 0.5, "no errors", transform=ax.transAxes, ha="center", va="center", fontsize=14,
                    color=GREEN)
        ax.set_title(f"Errors over time ({s.bucket_text()})")
        _draw_error_kinds(fig.add_subplot(gs[1]), totals)
        fig.tight_layout()
        return _save(fig, path)


def _draw_error_kinds(ax, totals: dict) -> None:
    """Horizontal bars of the total errors by kind."""
    ax.set_title("Errors by kind (total)")
    if not totals:
        ax.text(0.5, 0.5, "no errors", transform=ax.transAxes, ha="center", va="center", fontsize=14,
                color=GREEN)
        ax.set_axis_off()
        return
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])  # colour order as in the stacked bars
    colors = {k: _kind_color(k, i) for i, (k, _) in enumerate(ranked)}
    items = ranked[::-1]  # barh draws bottom-up: largest on top
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color=[colors[k] for k, _ in items], height=0.5)
    ax.bar_label(bars, labels=[f"{int(v):,}" for _, v in items], padding=3, fontsize=9)
    ax.margins(y=0.5 / len(items))
    ax.set_xlim(0, max(v for _, v in items) * 1.35)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax.set_xlabel("errors")
    ax.grid(True, axis="x")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)




def _latency_values(run: Run):
    """(values in ms, counts) from summary.histogram, else from the samples; None when there is none."""
    hist = run.summary.get("histogram")
    buckets = hist.get("buckets") if isinstance(hist, dict) else None
    if isinstance(buckets, list):
        pairs = [(num(b[0]), num(b[1])) for b in buckets if isinstance(b, list) and len(b) >= 2]
        pairs = [(v, c) for v, c in pairs if v is not None and c and v >= 0]
        if pairs:
            scale = {"us": 1e-3, "ms": 1.0, "ns": 1e-6, "s": 1e3}.get(str(hist.get("unit", "us")), 1e-3)
            return np.array([v * scale for v, _ in pairs]), np.array([c for _, c in pairs])
    if run.samples_path is not None:
        values = [num(ln.value.get("latency_ms")) for ln in iter_ndjson(run.samples_path)
                  if isinstance(ln.value, dict) and ln.value.get("outcome") in ("ok", "error")]
        values = [v for v in values if v is not None]
        if values:
            return np.array(values), np.ones(len(values))
    return None


def _ms_label(v: float, _pos=None) -> str:
    """A latency in ms as a short label with at most three significant digits: "250 ms", "1.5 s", "80 µs"."""
    if v >= 1000:
        return f"{v / 1000:.3g} s"
    return f"{v:.3g} ms" if v >= 1 else f"{v * 1000:.3g} µs"


def draw_latency_histogram(run: Run, _s: Optional[Series], path: Path) -> Optional[Path]:
    """Distribution of the latency of every finished request, with its CDF and the p50/p95/p99 marks."""
    data = _latency_values(run)
    if data is None:
        return None
    values, counts = data
    lo, hi = float(values.min()), float(values.max())
    log = lo > 0 and hi / lo > 20
    if hi <= lo:
        lo, hi = lo * 0.9 if lo > 0 else lo - 1, hi * 1.1 if hi > 0 else hi + 1
    nbins = 60
    edges = np.geomspace(lo * 0.98, hi * 1.02, nbins + 1) if log else np.linspace(max(0.0, lo * 0.98),
                                                                                 hi * 1.02, nbins + 1)
    hist, _ = np.histogram(values, bins=edges, weights=counts)
    lat = run.summary.get("latency_ms") if isinstance(run.summary.get("latency_ms"), dict) else {}
    order = np.argsort(values)
    cdf_x, cdf_y = values[order], np.cumsum(counts[order]) / counts.sum() * 100
    with matplotlib.rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        ax.bar(edges[:-1], hist, np.diff(edges), align="edge", color=BLUE, alpha=0.75, edgecolor="white",
               lw=0.4, label="requests")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(_ms_label))
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("latency" + (" (log scale)" if log else ""))
        ax.set_ylabel("requests per bin")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax2 = ax.twinx()
        ax2.spines["top"].set_visible(False)
        ax2.step(cdf_x, cdf_y, where="post", color="#111827", lw=1.4, label="cumulative (%)")
        ax2.set_ylim(0, 105)
        ax2.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax2.set_ylabel("cumulative share of requests")
        for key, color in (("p50", GREEN), ("p95", AMBER), ("p99", RED)):
            v = num(lat.get(key))
            if v is not None and (v > 0 or not log):
                ax.axvline(v, color=color, lw=1.6, ls="--", label=f"{key} = {_ms_label(v)}")
        handles = ax.get_legend_handles_labels()[0] + ax2.get_lines()
        ax.legend(handles, [h.get_label() for h in handles], loc="center right")
        n = int(counts.sum())
        ax.set_title(f"Latency distribution ({n:,} finished requests)")
        fig.tight_layout()
        return _save(fig, path)


CHARTS = (
    ("throughput.png", draw_throughput, "Throughput (requests/s) and active vUsers over time"),
    ("latency.png", draw_latency, "Latency percentiles over time"),
    ("errors.png", draw_errors, "Errors over time and by kind"),
    ("latency_hist.png", draw_latency_histogram, "Latency distribution"),
)
"""(file name, drawing function, alt text) of every chart of the report, in display order."""


def draw_all(run: Run, out_dir: Path) -> dict:
    """Draw every chart into *out_dir*; return ``{file name: path or None}``. Stale PNGs are removed."""
    series = series_of(run)
    out = {}
    for name, draw, _ in CHARTS:
        path = out_dir / name
        out[name] = draw(run, series, path)
        if out[name] is None and path.exists():
            path.unlink()  # a chart from an earlier report must not pass for this run's
    return out
