"""Can a row's energy be trusted? Each check is recorded as a number, then judged against a
threshold of measurement (llem.config.models.Measurement, its valid_* fields):

* the window's length in update periods of the energy counter, the period measured at the
  worker's start (llem.measure.gpu.counter_period): each window edge may be off by up to
  one period's energy, so a window of N periods is within about 2/N;
* sample_coverage: the share of the window covered by power samples at the asked rate
  (a sampler starved of CPU leaves holes that the sampled cross-check cannot see through);
* energy_counter_to_sampled: the counter against the integral of sampled power;
* throttle_s: time in the window during which any GPU's clocks were held back by one of
  the listed NVML clock event reasons (thermal slowdowns by default: the energy then
  depends on the cooling, not on the work);
* warmup not converged (the window may hold first-time costs).

A row without measured energy is not judged (energy_valid null). Neighbour jobs are judged
where the driver records them, in the `stats` view (llem.store.validity_fields.VALID_SQL).
Pure functions over plain numbers and sample rows: no NVML here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from llem.config.models import Measurement


@dataclass(frozen=True)
class Checks:
    """The numbers a row's validity is judged on (None: not measured / not applicable)."""

    energy: bool  # the row has measured energy
    duration_s: float
    counter_period_s: float | None
    counter_period_measured: bool  # False: the counter did not change when timed
    sample_coverage: float | None  # None: no GPU (nothing sampled)
    counter_to_sampled: float | None
    throttle_s: float | None
    warmup_converged: bool | None = None

    @property
    def counter_periods(self) -> float | None:
        p = self.counter_period_s
        return self.duration_s / p if p else None


def judge(c: Checks, m: Measurement) -> tuple[bool | None, list[str]]:
    """(energy_valid, energy_invalid_reasons); (None, []) when there is no energy to judge."""
    if not c.energy:
        return None, []
    out: list[str] = []
    n = c.counter_periods
    if not c.counter_period_measured:
        out.append("counter_period_unmeasured: the energy counter did not change while timed")
    elif n is not None and n < m.valid_min_counter_periods:
        out.append(f"short_window: {n:.1f} counter periods < {m.valid_min_counter_periods:g}")
    if c.sample_coverage is not None and c.sample_coverage < m.valid_min_sample_coverage:
        out.append(f"low_sample_coverage: {c.sample_coverage:.3f} < "
                   f"{m.valid_min_sample_coverage:g}")
    r = c.counter_to_sampled
    if r is not None and abs(r - 1.0) > m.valid_max_counter_sampled_gap:
        out.append(f"counter_vs_sampled: ratio {r:.3f}, off by more than "
                   f"{m.valid_max_counter_sampled_gap:g}")
    if c.throttle_s is not None and c.duration_s > 0:
        share = c.throttle_s / c.duration_s
        if share > m.valid_max_throttle_share:
            out.append(f"throttled: {share:.1%} of the window by "
                       f"{'/'.join(m.valid_throttle_reasons)} > "
                       f"{m.valid_max_throttle_share:.1%}")
    if m.valid_require_warmup_converged and c.warmup_converged is False:
        out.append("warmup_not_converged: the latency CV stayed above warmup_cv")
    return not out, out


def _power_rows(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """GPU sample rows by GPU UUID, in time order (server /metrics rows have no GPU)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("gpu_uuid") is not None:
            by.setdefault(r["gpu_uuid"], []).append(r)
    for v in by.values():
        v.sort(key=lambda r: r["t_s"])
    return by


def sample_coverage(rows: list[dict[str, Any]], duration_s: float, hz: float,
                    gpus: int) -> float | None:
    """Share of the window covered by power samples at the asked rate: each sample covers
    one sampling period from its time (clipped to the window); the lowest over the GPUs.
    None without GPUs; 0 for a GPU with no power sample."""
    if gpus == 0 or duration_s <= 0:
        return None
    period = 1.0 / hz
    by = _power_rows(r for r in rows if r.get("power_w") is not None)
    if len(by) < gpus:
        return 0.0
    shares = []
    for samples in by.values():
        ts = [min(max(r["t_s"], 0.0), duration_s) for r in samples]
        covered = sum(min(b - a, period) for a, b in pairwise(ts))
        covered += min(duration_s - ts[-1], period)
        shares.append(min(1.0, covered / duration_s))
    return min(shares)


def throttle(rows: list[dict[str, Any]], duration_s: float,
             reasons: Iterable[str]) -> tuple[float | None, list[str] | None]:
    """(seconds of the window during which any GPU had one of `reasons` active, every reason
    seen in any sample), each sample's reasons held until that GPU's next sample. (None,
    None) when no sample says (no GPU, or a driver without clock event reasons)."""
    want = set(reasons)
    spans: list[tuple[float, float]] = []
    seen: set[str] = set()
    said = False
    for samples in _power_rows(rows).values():
        for i, r in enumerate(samples):
            names = r.get("clocks_event_reasons")
            if names is None:
                continue
            said = True
            seen.update(names)
            if want.intersection(names):
                end = samples[i + 1]["t_s"] if i + 1 < len(samples) else duration_s
                spans.append((r["t_s"], max(r["t_s"], end)))
    if not said:
        return None, None
    total, last = 0.0, float("-inf")  # the union of the spans over all GPUs
    for a, b in sorted(spans):
        a = max(a, last)
        if b > a:
            total += b - a
            last = b
    return total, sorted(seen)


def power_source(rows: list[dict[str, Any]]) -> str | None:
    """Where the row's sampled power came from: 'instant' (NVML_FI_DEV_POWER_INSTANT),
    'average' (nvmlDeviceGetPowerUsage, a 1 s mean on Hopper), 'mixed' when the GPUs or
    samples differ, or 'counter' when no power was sampled (the row's power figures are
    then energy counter differences over time only). None when samples do not say."""
    powered = [r for r in rows if r.get("gpu_uuid") is not None and r.get("power_w") is not None]
    if not powered:
        return "counter"
    found = {r.get("power_source") for r in powered} - {None}
    if not found:
        return None
    return found.pop() if len(found) == 1 else "mixed"
