"""Server mode's plots: a configuration measured at several rate levels.

A configuration here is what stays when the rate-level parameters (server.rate,
server.concurrency, server.sweep_level) are set aside; each of its levels is a job. Levels
are drawn against the rate the load ACHIEVED in the steady-state window
(`arrival_rate_achieved`), not the target. A level stopped as over-saturated is not a normal
point: it is marked with a cross, left off its configuration's line and off the frontiers.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llem.report.data import ReportData, Y
from llem.report.metrics import label
from llem.report.plotkit import (
    HOVER,
    LAYOUT,
    MAX_TEXT_LABELS,
    colour,
    described,
    error,
    grid_of,
    mean,
    text_positions,
    zero_axes,
)

RATE = "arrival_rate_achieved"
LEVEL_METRICS = (Y, "goodput_requests_per_s", "slo_attainment", "ttft_p99_s", "itl_p99_s")
LATENCY_AXES = ("ttft_p99_s", "itl_p99_s")  # the energy-latency planes
SATURATED = {"symbol": "x", "size": 13, "line": {"width": 1}}


def series(data: ReportData) -> dict[str, list[dict[str, Any]]]:
    """Configurations (the non-level varying parameters' label, '' when none) -> levels."""
    others = [p for p in data.params if not p.level]
    out: dict[str, list[dict[str, Any]]] = {}
    for c in data.configs:
        out.setdefault(data.points.label(c["job_id"], others), []).append(c)
    return out


def _hover(data: ReportData, r: dict[str, Any], metrics: list[str]) -> str:
    sat = r.get("saturated_n") or 0
    flag = f"<br>over-saturated in {sat} of {r['n']} cycles" if sat else ""
    return described(r, [RATE, *metrics]) + flag


def rate_levels_figure(data: ReportData) -> go.Figure | None:
    """J/token, goodput, SLO attainment and p99 latencies against the achieved rate: one line per
    configuration across its levels; over-saturated levels as crosses, not joined."""
    metrics = [m for m in LEVEL_METRICS if m in data.metrics and data.has(m)]
    if not metrics or not data.has(RATE):
        return None
    nrows, ncols = grid_of(len(metrics))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[label(m) for m in metrics],
                        horizontal_spacing=0.08, vertical_spacing=0.16)
    groups = series(data)
    legend_saturated = False
    for si, (key, rows) in enumerate(groups.items()):
        rows = sorted((r for r in rows if mean(r, RATE) is not None),
                      key=lambda r: mean(r, RATE) or 0.0)
        name = key or "configuration"
        for mi, m in enumerate(metrics):
            at = {"row": mi // ncols + 1, "col": mi % ncols + 1}
            ok = [r for r in rows if mean(r, m) is not None and not r["saturated_n"]]
            bad = [r for r in rows if mean(r, m) is not None and r["saturated_n"]]
            if ok:
                fig.add_trace(go.Scatter(
                    x=[mean(r, RATE) for r in ok], y=[mean(r, m) for r in ok],
                    error_x=error(ok, RATE), error_y=error(ok, m), mode="lines+markers",
                    name=name, legendgroup=name, showlegend=mi == 0 and len(groups) > 1,
                    marker={"color": colour(si), "size": 9},
                    line={"color": colour(si), "width": 1.5},
                    text=[data.label(r) for r in ok],
                    customdata=[_hover(data, r, [m]) for r in ok], hovertemplate=HOVER),
                    **at)
            if bad:
                fig.add_trace(go.Scatter(
                    x=[mean(r, RATE) for r in bad], y=[mean(r, m) for r in bad],
                    mode="markers", name="over-saturated level", legendgroup="saturated",
                    showlegend=not legend_saturated,
                    marker={**SATURATED, "color": colour(si)},
                    text=[data.label(r) for r in bad],
                    customdata=[_hover(data, r, [m]) for r in bad], hovertemplate=HOVER), **at)
                legend_saturated = True
    fig.update_xaxes(title_text=label(RATE))
    fig.update_layout(title="Rate levels against the achieved rate (one line per "
                      "configuration; x: over-saturated level, not joined)",
                      **{**LAYOUT, "height": 420 * nrows + 60})
    zero_axes(fig)
    return fig


def frontier(points: list[tuple[float, float, int]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower latency and fewer
    J/token), in order of latency."""
    out, best = [], float("inf")
    for _x, y, i in sorted(points):
        if y < best:
            out.append(i)
            best = y
    return out


def energy_latency_figure(data: ReportData) -> go.Figure | None:
    """J/token against p99 TTFT and p99 ITL for every configuration and level, with the
    frontier of the levels that were not over-saturated."""
    axes = [m for m in LATENCY_AXES if m in data.metrics and data.has(m)]
    if not data.has_energy or not axes:
        return None
    fig = make_subplots(rows=1, cols=len(axes), subplot_titles=[
        f"J/token vs {label(m)}" for m in axes], horizontal_spacing=0.1)
    groups = series(data)
    legend_saturated = False
    for col, m in enumerate(axes, start=1):
        rows = [r for r in data.configs if mean(r, m) is not None and mean(r, Y) is not None]
        for si, (key, members) in enumerate(groups.items()):
            ids = {id(r) for r in members}
            for bad in (False, True):
                sel = [r for r in rows if id(r) in ids and bool(r["saturated_n"]) == bad]
                if not sel:
                    continue
                name = "over-saturated level" if bad else (key or "configuration")
                fig.add_trace(go.Scatter(
                    x=[mean(r, m) for r in sel], y=[mean(r, Y) for r in sel],
                    error_x=error(sel, m), error_y=error(sel, Y),
                    mode="markers",
                    name=name, legendgroup="saturated" if bad else name,
                    showlegend=(not legend_saturated) if bad else
                    (col == 1 and len(groups) > 1),
                    marker={**SATURATED, "color": colour(si)} if bad else
                    {"color": colour(si), "size": 9},
                    text=[data.label(r) for r in sel],
                    customdata=[_hover(data, r, [m, Y]) for r in sel], hovertemplate=HOVER),
                    row=1, col=col)
                legend_saturated = legend_saturated or bad
        normal = [(mean(r, m) or 0.0, mean(r, Y) or 0.0, i) for i, r in enumerate(rows)
                  if not r["saturated_n"]]
        front = [rows[i] for i in frontier(normal)]
        fig.add_trace(go.Scatter(
            x=[mean(r, m) for r in front], y=[mean(r, Y) for r in front],
            mode="lines+markers+text" if len(front) <= MAX_TEXT_LABELS else "lines+markers",
            textposition=text_positions([mean(r, m) for r in front], "top right"),
            name="Pareto frontier", legendgroup="frontier",
            showlegend=col == 1, line={"color": "black", "dash": "dash", "width": 1.5,
                                       "shape": "hv"},
            marker={"symbol": "circle-open", "size": 16, "color": "black",
                    "line": {"width": 2}},
            text=[data.label(r) for r in front],
            customdata=[_hover(data, r, [m, Y]) for r in front], hovertemplate=HOVER),
            row=1, col=col)
        fig.update_xaxes(title_text=label(m), row=1, col=col)
    fig.update_yaxes(title_text=label(Y), row=1, col=1)
    fig.update_layout(title="Energy vs latency across configurations and rate levels "
                      "(circled: Pareto frontier, lower latency at fewer J/token)", **LAYOUT)
    zero_axes(fig)
    return fig


def figures(data: ReportData) -> list[tuple[str, go.Figure | None]]:
    return [("rate_levels", rate_levels_figure(data)),
            ("energy_latency_pareto", energy_latency_figure(data))]
