"""What every plot of the report shares: colours, layout, error bars that mean something,
axes that never go below zero for quantities that cannot, and one number format."""

from __future__ import annotations

import math
from typing import Any

from llem.report.fmt import mean_ci
from llem.report.metrics import label

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22")
LAYOUT: dict[str, Any] = {"template": "plotly_white", "height": 480,
                          "margin": {"l": 70, "r": 30, "t": 70, "b": 60},
                          "legend": {"orientation": "h", "y": -0.18}}
MIN_CI_CYCLES = 3  # a CI over fewer cycles (t = 12.7 for 2) says little: no error bar
MAX_TEXT_LABELS = 16  # points labelled on the plot itself up to this many; else on hover
HOVER = "%{text}<br>%{customdata}<extra></extra>"
# Log axis when a numeric parameter's values span this factor or more (rates 4, 16, 64).
LOG_SPAN = 16.0
def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def mean(row: dict[str, Any], metric: str) -> float | None:
    v = row.get(f"{metric}_mean")
    return float(v) if v is not None and math.isfinite(float(v)) else None


def ci(row: dict[str, Any], metric: str) -> float | None:
    """The 95% CI half-width when it rests on 3+ cycles, else None (no error bar)."""
    n, c = row.get(f"{metric}_n") or 0, row.get(f"{metric}_ci95")
    return float(c) if c is not None and n >= MIN_CI_CYCLES and math.isfinite(c) else None


def error(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """Error bars for `rows`' means of `metric` (None where fewer than 3 cycles), the lower
    arm cut at zero: these quantities are never negative. None when no row has one."""
    up = [ci(r, metric) for r in rows]
    if all(u is None for u in up):
        return None
    down = [None if u is None else min(u, mean(r, metric) or 0.0) for r, u in zip(rows, up,
                                                                                   strict=True)]
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down,
            "thickness": 1.2, "width": 4}


def described(row: dict[str, Any], metrics: list[str]) -> str:
    """Hover text of a point: each metric as `name: mean ± CI` (CI from 3+ cycles)."""
    parts = []
    for m in metrics:
        if mean(row, m) is not None:
            parts.append(f"{label(m)}: {mean_ci(mean(row, m), ci(row, m))} "
                         f"(n={row.get(f'{m}_n') or 0})")
    return "<br>".join(parts)


def zero_axes(fig: Any, x: bool = True) -> None:
    """Linear axes start at zero (never below it); log axes are left as they are."""
    fig.for_each_yaxis(lambda a: a.update(rangemode="tozero") if a.type != "log" else None)
    if x:
        fig.for_each_xaxis(lambda a: a.update(rangemode="tozero")
                           if a.type not in ("log", "category") else None)


def numeric_axis(values: list[float]) -> dict[str, Any]:
    """A numeric x axis: log when the values span LOG_SPAN or more, else linear from 0."""
    vals = [v for v in values if v is not None]
    if vals and min(vals) > 0 and max(vals) / min(vals) >= LOG_SPAN:
        return {"type": "log"}
    return {"type": "linear", "rangemode": "tozero"}


def grid_of(n: int) -> tuple[int, int]:
    """Rows and columns for n panels: up to 3 side by side."""
    cols = min(3, max(1, n)) if n != 4 else 2
    return math.ceil(n / cols), cols


def text_mode(n_points: int) -> str:
    return "markers+text" if n_points <= MAX_TEXT_LABELS else "markers"


def text_positions(xs: list[float | None], where: str = "top center") -> list[str]:
    """Labels above their points (`where`), leaning left near the right edge (not cut off
    there)."""
    top = max((x for x in xs if x is not None), default=0.0)
    return ["top left" if x is not None and top > 0 and x > 0.75 * top else where
            for x in xs]
