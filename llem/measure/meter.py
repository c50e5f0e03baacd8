"""A measurement window: energy counters read at its edges, power sampled inside it.

Like Zeus' begin_window/end_window: the harness opens a window after the backend has
finished its warmup and closes it after the last output reached the host, so every joule
in the window belongs to the measured work. Missing sources give None plus a reason,
never a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from llem.measure.gpu import Sampler, job_gpus
from llem.measure.rapl import RaplReader, domains


@dataclass
class Window:
    """What one window measured. Energies in joules; None where not measured."""

    duration_s: float
    gpu_energy_j: dict[str, float | None]  # per GPU UUID, from the energy counter
    gpu_sampled_energy_j: dict[str, float | None]  # per GPU UUID, integral of sampled power
    idle_power_w: dict[str, float | None]
    cpu: dict[str, float]  # cpu_energy_j / dram_energy_j when RAPL is readable
    samples: list[dict[str, Any]] = field(default_factory=list)
    method: str | None = None  # "nvml_counter", "rapl", "nvml_counter+rapl"
    unavailable: str | None = None  # why energy is null

    @property
    def energy_j(self) -> float | None:
        """Total measured energy of the job's devices (GPU counters, else RAPL)."""
        if self.gpu_energy_j:
            vals = list(self.gpu_energy_j.values())
            return None if any(v is None for v in vals) else float(sum(v for v in vals if v))
        if self.cpu:
            return sum(self.cpu.values())
        return None


def integrate(rows: list[dict[str, Any]], uuid: str) -> float | None:
    """Trapezoidal integral of sampled power for one GPU, in joules."""
    pts = [(r["t_s"], r["power_w"]) for r in rows
           if r["gpu_uuid"] == uuid and r["power_w"] is not None]
    if len(pts) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(pts))


class EnergyMeter:
    """Energy of one job's devices; built once per worker, reused for every window."""

    def __init__(self, gpus_per_job: int) -> None:
        self.gpus, gpu_reason = job_gpus(gpus_per_job)
        zones, rapl_reason = domains()
        self.rapl = RaplReader(zones) if zones else None
        self.idle_power_w: dict[str, float | None] = {g.uuid: None for g in self.gpus}
        self.reason = None if (self.gpus or self.rapl) else f"{gpu_reason}; {rapl_reason}"
        self._t0 = 0.0
        self._e0: dict[str, int | None] = {}
        self._sampler: Sampler | None = None

    @property
    def method(self) -> str | None:
        parts = (["nvml_counter"] if self.gpus else []) + (["rapl"] if self.rapl else [])
        return "+".join(parts) or None

    def gpu_info(self) -> list[dict[str, Any]]:
        return [g.info() for g in self.gpus]

    def idle_baseline(self, seconds: float) -> dict[str, float | None]:
        """Mean power of each GPU over `seconds` of idling (with the model loaded)."""
        if not self.gpus or seconds <= 0:
            return self.idle_power_w
        e0 = {g.uuid: g.energy_mj() for g in self.gpus}
        t0 = time.perf_counter()
        time.sleep(seconds)
        dt = time.perf_counter() - t0
        for g in self.gpus:
            e1, s = g.energy_mj(), e0[g.uuid]
            self.idle_power_w[g.uuid] = (e1 - s) / 1000.0 / dt if e1 is not None and \
                s is not None else None
        return self.idle_power_w

    def begin(self, sample_hz: float = 10.0) -> None:
        self._sampler = Sampler(self.gpus, sample_hz)
        if self.rapl:
            self.rapl.begin()
        self._e0 = {g.uuid: g.energy_mj() for g in self.gpus}
        self._sampler.start()
        self._t0 = time.perf_counter()

    def end(self) -> Window:
        t1 = time.perf_counter()
        e1 = {g.uuid: g.energy_mj() for g in self.gpus}
        cpu = self.rapl.end() if self.rapl else {}
        rows = self._sampler.stop() if self._sampler else []
        energy: dict[str, float | None] = {}
        for g in self.gpus:
            a, b = self._e0.get(g.uuid), e1[g.uuid]
            energy[g.uuid] = (b - a) / 1000.0 if a is not None and b is not None else None
        return Window(duration_s=t1 - self._t0, gpu_energy_j=energy,
                      gpu_sampled_energy_j={g.uuid: integrate(rows, g.uuid) for g in self.gpus},
                      idle_power_w=dict(self.idle_power_w), cpu=cpu, samples=rows,
                      method=self.method, unavailable=self.reason)

