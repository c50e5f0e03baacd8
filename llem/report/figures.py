"""The report's interactive plots (plotly); each function returns one figure or None.

Every point is a configuration's mean over its ok cycles; error bars are 95% CIs where
3+ cycles back them; axes of quantities that cannot be negative start at zero."""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llem.report import levels
from llem.report.data import ReportData, X, Y
from llem.report.fmt import sort_key, value
from llem.report.metrics import label
from llem.report.params import Param
from llem.report.plotkit import (
    HOVER,
    LAYOUT,
    colour,
    described,
    error,
    grid_of,
    mean,
    numeric_axis,
    text_mode,
    text_positions,
    zero_axes,
)

LATENCIES = (("latency_p50_s", "circle"), ("latency_p99_s", "diamond"),
             ("ttft_p50_s", "triangle-up"))


def pareto_figure(data: ReportData) -> go.Figure | None:
    """J/token vs tokens/s per configuration, points labelled, frontier highlighted."""
    rows = [r for r in data.configs if mean(r, X) is not None and mean(r, Y) is not None]
    if not rows:
        return None
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[mean(r, X) for r in rows], y=[mean(r, Y) for r in rows],
        error_y=error(rows, Y), error_x=error(rows, X), mode=text_mode(len(rows)),
        name="configuration", text=[data.label(r) for r in rows],
        textposition=text_positions([mean(r, X) for r in rows]),
        customdata=[described(r, [X, Y]) for r in rows], hovertemplate=HOVER,
        marker={"size": [14 if r["pareto"] else 9 for r in rows], "color": colour(0),
                "line": {"width": [2 if r["pareto"] else 0 for r in rows], "color": "black"}}))
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: mean(r, X) or 0.0)
    fig.add_trace(go.Scatter(x=[mean(r, X) for r in front], y=[mean(r, Y) for r in front],
                             mode="lines", name="Pareto frontier", hoverinfo="skip",
                             line={"color": "black", "dash": "dash", "width": 1.5}))
    fig.update_layout(title="Energy per token vs throughput (outlined: Pareto frontier, "
                      "more tokens/s at fewer J/token)", xaxis_title=label(X),
                      yaxis_title=label(Y), **LAYOUT)
    zero_axes(fig)
    return fig


def latency_figure(data: ReportData, x_metric: str) -> go.Figure | None:
    """Latency p50 / p99 and TTFT p50 against `x_metric` (J/token or tokens/s), one point
    per configuration and latency."""
    fig = go.Figure()
    for i, (metric, symbol) in enumerate(LATENCIES):
        rows = [r for r in data.configs
                if mean(r, metric) is not None and mean(r, x_metric) is not None]
        if not rows:
            continue
        fig.add_trace(go.Scatter(
            x=[mean(r, x_metric) for r in rows], y=[mean(r, metric) for r in rows],
            error_y=error(rows, metric), mode=text_mode(len(rows)) if i == 0 else "markers",
            name=label(metric), marker={"symbol": symbol, "size": 10, "color": colour(i)},
            text=[data.label(r) for r in rows],
            textposition=text_positions([mean(r, x_metric) for r in rows]),
            customdata=[described(r, [x_metric, metric]) for r in rows], hovertemplate=HOVER))
    if not fig.data:
        return None
    what = "energy per token" if x_metric == Y else "throughput"
    fig.update_layout(title=f"Latency vs {what} (labels on the p50 points)",
                      xaxis_title=label(x_metric), yaxis_title="latency (s)", **LAYOUT)
    zero_axes(fig)
    return fig


def facet_metrics(data: ReportData) -> list[str]:
    """What a parameter's plot shows, one panel each, for the metrics with data."""
    if data.server:
        wanted = [Y, "goodput_requests_per_s", "ttft_p99_s"]
    elif data.has("arrival_rate_achieved"):  # arrivals: the queue shows in e2e latency
        wanted = [Y, X, "e2e_latency_p99_s", "ttft_p50_s"]
    else:
        wanted = [Y, X, "latency_p50_s", "ttft_p50_s"]
    return [m for m in wanted if m in data.metrics and data.has(m)]


def _x(v: Any, numeric: bool) -> Any:
    return v if numeric else value(v)


def parameter_figure(data: ReportData, prm: Param) -> go.Figure | None:
    """The metrics against one parameter (x), one line per combination of the other varying
    parameters (colour), one panel per metric."""
    metrics = facet_metrics(data)
    if not metrics:
        return None
    others = [p for p in data.params if p.path != prm.path and p.name not in prm.together]
    series: dict[str, list[dict[str, Any]]] = {}
    for c in data.configs:
        series.setdefault(data.points.label(c["job_id"], others), []).append(c)
    numeric = prm.numeric and all(data.value(c, prm) is not None for c in data.configs)
    nrows, ncols = grid_of(len(metrics))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[label(m) for m in metrics],
                        horizontal_spacing=0.08, vertical_spacing=0.16)
    for si, (key, sel) in enumerate(series.items()):
        sel = sorted(sel, key=lambda r: sort_key(data.value(r, prm)))
        shown = False
        for mi, m in enumerate(metrics):
            pts = [r for r in sel if mean(r, m) is not None]
            if not pts:
                continue
            fig.add_trace(go.Scatter(
                x=[_x(data.value(r, prm), numeric) for r in pts], y=[mean(r, m) for r in pts],
                error_y=error(pts, m), mode="lines+markers", name=key or "all",
                legendgroup=key, showlegend=bool(key) and not shown,
                marker={"color": colour(si), "size": 9}, line={"color": colour(si), "width": 1.5},
                text=[data.label(r) for r in pts], customdata=[described(r, [m]) for r in pts],
                hovertemplate=HOVER), row=mi // ncols + 1, col=mi % ncols + 1)
            shown = True
    if numeric:
        fig.update_xaxes(**numeric_axis([data.value(c, prm) for c in data.configs]))
    else:
        order = [value(v) for v in data.points.values_of(prm.path)]
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
    name = prm.name + (f" (with {', '.join(prm.together)})" if prm.together else "")
    fig.update_xaxes(title_text=name)
    coloured = f"; colour: {', '.join(p.name for p in others)}" if others else ""
    fig.update_layout(title=f"By {name}{coloured}", **{**LAYOUT, "height": 420 * nrows + 60})
    zero_axes(fig)
    return fig


def timeline_figure(data: ReportData) -> go.Figure | None:
    """Sampled power of one job per GPU, with its idle baseline."""
    tl = data.timeline
    if tl is None:
        return None
    fig = go.Figure()
    t_max = 0.0
    for gpu, pts in tl.points.items():
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines",
                                 name=f"power {gpu[:16]}",
                                 hovertemplate="%{x:.3g} s<br>%{y:.3g} W<extra></extra>"))
        t_max = max([t_max, *(p[0] for p in pts)])
    if tl.idle_w_per_gpu is not None:
        fig.add_trace(go.Scatter(x=[0, t_max], y=[tl.idle_w_per_gpu] * 2, mode="lines",
                                 name="idle baseline (per GPU)",
                                 line={"color": "grey", "dash": "dot"}))
    fig.update_layout(title=f"Power timeline: {tl.label}", xaxis_title="time in window (s)",
                      yaxis_title="power (W)", **LAYOUT)
    zero_axes(fig)
    return fig


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def all_figures(data: ReportData) -> list[tuple[str, go.Figure]]:
    """(file stem, figure) for every plot this campaign has data for, in report order: the
    trade-offs, one plot per varying parameter (a parameter that changes together with an
    earlier one shares its plot; a server's rate levels have their own plots, against the
    achieved rate), then the power timeline."""
    figs: list[tuple[str, go.Figure | None]] = []
    if data.server:
        figs += levels.figures(data)
    else:
        figs += [("pareto", pareto_figure(data)),
                 ("latency_vs_energy", latency_figure(data, Y) if data.has_energy else None),
                 ("latency_vs_throughput", latency_figure(data, X))]
    done: set[str] = set()
    for prm in data.params:
        if prm.name in done or (data.server and prm.level):
            continue
        done.update((prm.name, *prm.together))
        figs.append((f"by_{slug(prm.name)}", parameter_figure(data, prm)))
    figs.append(("power_timeline", timeline_figure(data)))
    return [(name, f) for name, f in figs if f is not None]
