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
