"""How the reading commands write numbers: 3 significant digits, and a mean with its CI in
one format (the same decimal places, or the same power of ten), never `0.02197 ± 4.200e-04`."""

from __future__ import annotations

import json
import math
from typing import Any

SIG = 3  # significant digits of a value
CI_SIG = 2  # of a confidence interval's half-width
SMALL, LARGE = 1e-3, 1e6  # outside [SMALL, LARGE): a shared power of ten


def _bad(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _decimals(v: float, sig: int) -> int:
    """Decimal places that show `v` with `sig` significant digits (0 for large values: the
    integer digits are never rounded away)."""
    if v == 0:
        return sig - 1
    v = float(f"{v:.{sig - 1}e}")  # 0.99999 rounds to 1.00, not 1.000
    return max(0, sig - 1 - math.floor(math.log10(abs(v))))


def num(v: Any) -> str:
    """One number: `0.0220`, `344`, `12346`, `1.50`, `4.20e-05`; `n/a` when missing."""
    if _bad(v):
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    x = float(v)
    if x != 0 and not SMALL <= abs(x) < LARGE:
        return f"{x:.{SIG - 1}e}"
    return f"{x:.{_decimals(x, SIG)}f}"


def mean_ci(mean: Any, ci: Any) -> str:
    """`mean ± ci` with both written alike: the CI to 2 significant digits and the mean to
    the same decimal places (at least 3 significant digits): `0.02197 ± 0.00042`,
    `344 ± 253`, `(4.20 ± 0.05)e-05`. Without a CI, the mean alone."""
    if _bad(mean):
        return "n/a"
    if _bad(ci):
        return num(mean)
    m, c = float(mean), abs(float(ci))
    if m != 0 and not SMALL <= abs(m) < LARGE:
        exp = math.floor(math.log10(abs(m)))
        ms, cs = m / 10**exp, c / 10**exp
        d = max(_decimals(ms, SIG), _decimals(cs, CI_SIG) if cs else 0)
        return f"({ms:.{d}f} ± {cs:.{d}f})e{exp:+03d}"
    d = max(_decimals(m, SIG), _decimals(c, CI_SIG) if c else 0)
    return f"{m:.{d}f} ± {c:.{d}f}"


def value(v: Any) -> str:
    """A parameter's value as a grid file writes it: `true`, `null`, `4` (not `4.0`),
    `float32`; lists and maps as compact JSON."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}" if math.isfinite(v) else str(v)
    if isinstance(v, str | int):
        return str(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


def sort_key(v: Any) -> tuple[int, float, str]:
    """Orders mixed values: numbers by size, then text, then null last."""
    if v is None:
        return (3, 0.0, "")
    if isinstance(v, bool):
        return (0, float(v), "")
    if isinstance(v, int | float):
        return (1, float(v), "")
    return (2, 0.0, value(v))
