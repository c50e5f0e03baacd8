"""Thermal gaps: before a job, wait until its GPUs are back near idle, so back-to-back jobs do
not inherit the previous job's heat (a hot GPU draws more power for the same work).

"Near idle" is the coolest state seen on each GPU (its temperature since the worker started,
its power since the model loaded: idle with a CUDA context, see context_created) plus a
margin, or an absolute temperature (gap_idle_temp_c). The wait is bounded (gap_max_s);
what happened is recorded with the result: the gap's length, whether idle was reached, and
the temperature and power the job started at.

The readings come from a source (by default llem.measure.gpu, the only NVML reader); clock
and sleep are injectable so the wait logic runs unchanged against a simulated GPU in tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llem.config.models import Measurement

Reading = dict[str, Any]  # one GPU: {"temperature_c": float | None, "power_w": float | None}
Source = Callable[[], list[Reading]]


@dataclass(frozen=True)
class Gap:
    """One gap before one job (None where a GPU reported nothing)."""

    gap_s: float | None
    reached: bool | None
    start_temperature_c: float | None
    start_power_w: float | None
    target_temperature_c: float | None
    target_power_w: float | None

    def columns(self) -> dict[str, Any]:
        return {"gap_s": self.gap_s, "gap_reached": self.reached,
                "start_temperature_c": self.start_temperature_c,
                "start_power_w": self.start_power_w,
                "gap_target_temperature_c": self.target_temperature_c,
                "gap_target_power_w": self.target_power_w}


NO_GPU = Gap(None, None, None, None, None, None)


def _hottest(readings: list[Reading], key: str) -> float | None:
    vals = [float(r[key]) for r in readings if r.get(key) is not None]
    return max(vals) if vals else None


def _total(readings: list[Reading], key: str) -> float | None:
    vals = [float(r[key]) for r in readings if r.get(key) is not None]
    return sum(vals) if vals and len(vals) == len(readings) else None


class ThermalGaps:
    """Gaps for one worker's GPUs; remembers the coolest reading of each GPU."""

    def __init__(self, source: Source, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.source, self.clock, self.sleep = source, clock, sleep
        self.coolest: list[Reading] = []
        self._observe(self._read())  # the worker's start: idle, before any job

    @classmethod
    def for_gpus(cls, gpus: list[Any]) -> ThermalGaps:
        """Gaps over llem.measure.gpu.Gpu objects (their sample() is the NVML read)."""
        return cls(lambda: [g.sample() for g in gpus])

    def _read(self) -> list[Reading]:
        try:
            return list(self.source())
        except Exception:  # a failed read must not fail the job: no gap, nothing recorded
            return []

    def _observe(self, readings: list[Reading]) -> None:
        if len(self.coolest) != len(readings):
            self.coolest = [dict(r) for r in readings]
            return
        for low, r in zip(self.coolest, readings):
            for key in ("temperature_c", "power_w"):
                if r.get(key) is not None and (low.get(key) is None or r[key] < low[key]):
                    low[key] = r[key]

    def context_created(self) -> None:
        """Re-take the idle power once the model is loaded. A CUDA context raises a GPU's idle
        power for good (on an H100 here: 70 W cold, ~120 W with a context, for minutes after
        any work, clocks held high), so a power target from before the load is never reached
        and every gap would run to gap_max_s. Temperature keeps its coolest reading."""
        readings = self._read()
        if len(readings) != len(self.coolest):
            return
        for low, r in zip(self.coolest, readings):
            if r.get("power_w") is not None:
                low["power_w"] = r["power_w"]

    def targets(self, m: Measurement) -> tuple[list[float | None], list[float | None]]:
        """Per GPU: the temperature and power a job may start at."""
        temps = [m.gap_idle_temp_c if m.gap_idle_temp_c is not None else
                 (c["temperature_c"] + m.gap_temp_margin_c
                  if c.get("temperature_c") is not None else None) for c in self.coolest]
        powers = [c["power_w"] + m.gap_power_margin_w if c.get("power_w") is not None
                  else None for c in self.coolest]
        return temps, powers

    def wait(self, m: Measurement) -> Gap:
        """Wait (at most m.gap_max_s) until every GPU is at or below its targets."""
        readings = self._read()
        if not readings:
            return NO_GPU
        t0 = self.clock()
        temps, powers = self.targets(m)
        reached = _cool(readings, temps, powers)
        if m.thermal_gaps:
            while not reached and self.clock() - t0 < m.gap_max_s:
                self.sleep(min(m.gap_poll_s, max(0.0, m.gap_max_s - (self.clock() - t0))))
                readings = self._read() or readings
                reached = _cool(readings, temps, powers)
        gap_s = self.clock() - t0 if m.thermal_gaps else 0.0
        self._observe(readings)
        known_t = [t for t in temps if t is not None]
        known_p = [p for p in powers if p is not None]
        return Gap(gap_s=gap_s, reached=reached if m.thermal_gaps else None,
                   start_temperature_c=_hottest(readings, "temperature_c"),
                   start_power_w=_total(readings, "power_w"),
                   target_temperature_c=min(known_t) if known_t else None,
                   target_power_w=sum(known_p) if len(known_p) == len(powers) and known_p
                   else None)


def _cool(readings: list[Reading], temps: list[float | None],
          powers: list[float | None]) -> bool:
    """Every GPU at or below its targets (a target or reading that is missing does not
    hold the job back)."""
    for r, t, p in zip(readings, temps, powers):
        if t is not None and r.get("temperature_c") is not None and r["temperature_c"] > t:
            return False
        if p is not None and r.get("power_w") is not None and r["power_w"] > p:
            return False
    return True
