"""Summary statistics of measured samples (latencies, per-token gaps, cycles)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def pct(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (linear interpolation, as numpy), None for no values."""
    return float(np.percentile(values, q)) if len(values) else None


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summary(values: Sequence[float], prefix: str) -> dict[str, float | None]:
    """{prefix}_mean_s, _p50_s, _p90_s, _p99_s of a list of seconds."""
    return {f"{prefix}_mean_s": mean(values), f"{prefix}_p50_s": pct(values, 50),
            f"{prefix}_p90_s": pct(values, 90), f"{prefix}_p99_s": pct(values, 99)}


def safe_div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(b):
        return None
    return a / b


def t_critical(df: int, confidence: float = 0.95) -> float | None:
    """Two-sided Student-t critical value (scipy), None for df < 1."""
    if df < 1:
        return None
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def cycle_stats(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Across cycles of one configuration: n, mean, sample std, 95% CI half-width (t) and CV.

    The CI uses the t-distribution with n-1 degrees of freedom (few cycles: the normal 1.96
    would claim too much). None where undefined (std needs 2 values, CV a non-zero mean).
    Missing values (None, NaN) are left out and not counted.
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(xs)
    m = float(np.mean(xs)) if n else None
    std = float(np.std(xs, ddof=1)) if n >= 2 else None
    t = t_critical(n - 1) if n >= 2 else None
    ci = t * std / math.sqrt(n) if t is not None and std is not None else None
    cv = std / abs(m) if std is not None and m else None
    return {"n": n, "mean": m, "std": std, "ci95": ci, "cv": cv}


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample std / mean) of the values; None for < 2 values."""
    return cycle_stats(values)["cv"]
