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


# Two-sided 95% Student-t critical values for df 1..30 (scipy.stats.t.ppf(0.975, df)), used
# where scipy is not installed (a bare GPU node); beyond 30 a Cornish-Fisher expansion.
_T95 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
        2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
        2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
        2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_critical(df: int, confidence: float = 0.95) -> float | None:
    """Two-sided Student-t critical value, None for df < 1 (scipy when installed)."""
    if df < 1:
        return None
    try:
        from scipy import stats
    except ImportError:
        if confidence != 0.95:
            raise
        if df <= len(_T95):
            return _T95[df - 1]
        z = 1.959964
        return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
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
