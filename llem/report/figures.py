"""The report's interactive plots (plotly); each function returns one figure or None."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llem.report.data import ReportData, X, Y
from llem.report.metrics import label

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
LAYOUT: dict[str, Any] = {"template": "plotly_white", "height": 460,
                          "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
                          "legend": {"orientation": "h", "y": -0.2}}


def backend_colours(data: ReportData) -> dict[str, str]:
    names = sorted({str(c["backend"]) for c in data.configs})
    return {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(names)}


def _by_backend(data: ReportData) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for c in data.configs:
        out.setdefault(str(c["backend"]), []).append(c)
    return out


def pareto_figure(data: ReportData) -> go.Figure | None:
    """J/token vs tokens/s per configuration, coloured by backend, frontier highlighted."""
    if not data.has_energy:
        return None
    fig = go.Figure()
    colours = backend_colours(data)
    for backend, rows in _by_backend(data).items():
        rows = [r for r in rows if r[f"{Y}_mean"] is not None and r[f"{X}_mean"] is not None]
        fig.add_trace(go.Scatter(
            x=[r[f"{X}_mean"] for r in rows], y=[r[f"{Y}_mean"] for r in rows],
            error_y={"type": "data", "array": [r[f"{Y}_ci95"] or 0 for r in rows]},
            error_x={"type": "data", "array": [r[f"{X}_ci95"] or 0 for r in rows]},
            mode="markers", name=backend, text=[data.label(r) for r in rows],
            marker={"size": [14 if r["pareto"] else 9 for r in rows], "color": colours[backend],
                    "line": {"width": [2 if r["pareto"] else 0 for r in rows],
                             "color": "black"}},
            hovertemplate="%{text}<br>%{x:.4g} tokens/s<br>%{y:.4g} J/token<extra></extra>"))
    front = sorted((r for r in data.configs if r["pareto"]), key=lambda r: r[f"{X}_mean"])
    fig.add_trace(go.Scatter(x=[r[f"{X}_mean"] for r in front], y=[r[f"{Y}_mean"] for r in front],
                             mode="lines", name="Pareto frontier", hoverinfo="skip",
                             line={"color": "black", "dash": "dash", "width": 1.5}))
    fig.update_layout(title="Energy per token vs throughput (mean ± 95% CI; outlined: Pareto "
                      "frontier)", xaxis_title=label(X), yaxis_title=label(Y), **LAYOUT)
    return fig


LATENCIES = (("latency_p50_s", "circle"), ("latency_p99_s", "diamond"),
             ("ttft_p50_s", "triangle-up"))


def latency_figure(data: ReportData) -> go.Figure | None:
    """Latency p50 / p99 and TTFT against J/token, per configuration."""
    if not data.has_energy:
        return None
    fig = go.Figure()
    for metric, symbol in LATENCIES:
        rows = [r for r in data.configs
                if r.get(f"{metric}_mean") is not None and r[f"{Y}_mean"] is not None]
        if rows:
            fig.add_trace(go.Scatter(
                x=[r[f"{Y}_mean"] for r in rows], y=[r[f"{metric}_mean"] for r in rows],
                mode="markers", name=label(metric), marker={"symbol": symbol, "size": 10},
                text=[data.label(r) for r in rows],
                hovertemplate="%{text}<br>%{x:.4g} J/token<br>%{y:.4g} s<extra></extra>"))
    fig.update_layout(title="Latency vs energy per token", xaxis_title=label(Y),
                      yaxis_title="latency (s)", **LAYOUT)
    return fig


def by_parameter_figure(data: ReportData, metric: str) -> go.Figure | None:
    """`metric` against each swept parameter (one panel each), coloured by backend."""
    rows = [r for r in data.configs if r.get(f"{metric}_mean") is not None]
    params = data.swept or ["backend"]
    if not rows:
        return None
    fig = make_subplots(rows=1, cols=len(params), subplot_titles=params, shared_yaxes=True)
    colours = backend_colours(data)
    for col, param in enumerate(params, start=1):
        for backend in sorted({str(r["backend"]) for r in rows}):
            sel = [r for r in rows if str(r["backend"]) == backend]
            fig.add_trace(go.Scatter(
                x=[str(r[param]) for r in sel], y=[r[f"{metric}_mean"] for r in sel],
                error_y={"type": "data", "array": [r[f"{metric}_ci95"] or 0 for r in sel]},
                mode="markers", name=backend, legendgroup=backend, showlegend=col == 1,
                marker={"color": colours[backend], "size": 10}, text=[data.label(r) for r in sel],
                hovertemplate="%{text}<br>%{y:.4g}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(type="category", title_text=param, row=1, col=col)
    fig.update_yaxes(title_text=label(metric), row=1, col=1)
    fig.update_layout(title=f"{label(metric)} by swept parameter (mean ± 95% CI)", **LAYOUT)
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
                                 name=f"power {gpu[:16]}"))
        t_max = max([t_max, *(p[0] for p in pts)])
    if tl.idle_w_per_gpu is not None:
        fig.add_trace(go.Scatter(x=[0, t_max], y=[tl.idle_w_per_gpu] * 2, mode="lines",
                                 name="idle baseline (per GPU)",
                                 line={"color": "grey", "dash": "dot"}))
    fig.update_layout(title=f"Power timeline: {tl.label}", xaxis_title="time in window (s)",
                      yaxis_title="power (W)", yaxis_rangemode="tozero", **LAYOUT)
    return fig


def all_figures(data: ReportData) -> list[tuple[str, go.Figure]]:
    """(file stem, figure) for every plot this campaign has data for, in report order."""
    figs = [("pareto", pareto_figure(data)), ("latency_vs_energy", latency_figure(data)),
            ("j_per_token_by_parameter", by_parameter_figure(data, Y)),
            ("tokens_per_s_by_parameter", by_parameter_figure(data, X)),
            ("power_timeline", timeline_figure(data))]
    return [(name, f) for name, f in figs if f is not None]
