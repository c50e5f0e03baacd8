"""A measurement window: energy counters read at its edges, power sampled inside it.

Like Zeus' begin_window/end_window: the harness opens a window after the backend has
finished its warmup and closes it after the last output reached the host, so every joule
in the window belongs to the measured work. Missing sources give None plus a reason,
never a guess.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from llem.measure.gpu import Sampler, job_gpus
from llem.measure.rapl import POWERCAP, RaplReader, domains

JUST_WORKED_S = 30.0  # idle measured sooner than this after work counts as "just worked"


@dataclass
class Idle:
    """An idle baseline and the state the GPUs were in while it was measured.

    Idle power depends on state (an H100 idles at ~72 W cold and ~123 W just after work,
    clocks still high), so the state is recorded with every result that subtracts it.
    """

    seconds: float
    power_w: dict[str, float | None]  # per GPU UUID: counter energy / seconds
    temperature_c: float | None  # hottest GPU at the start of the idle period
    sm_clock_mhz: float | None  # highest SM clock at the start
    since_work_s: float | None  # since this worker's GPUs last worked; None: not yet

    @property
    def just_worked(self) -> bool | None:
        return None if self.since_work_s is None else self.since_work_s < JUST_WORKED_S

    def columns(self) -> dict[str, Any]:
        return {"idle_s": self.seconds, "idle_temperature_c": self.temperature_c,
                "idle_sm_clock_mhz": self.sm_clock_mhz, "idle_since_work_s": self.since_work_s,
                "idle_just_worked": self.just_worked}


@dataclass
class Window:
    """What one window measured. Energies in joules; None where not measured."""

    duration_s: float
    gpu_energy_j: dict[str, float | None]  # per GPU UUID, from the energy counter
    gpu_sampled_energy_j: dict[str, float | None]  # per GPU UUID, integral of sampled power
    idle_power_w: dict[str, float | None]
    cpu: dict[str, float]  # cpu_energy_j / dram_energy_j when RAPL is readable
    samples: list[dict[str, Any]] = field(default_factory=list)
    idle: Idle | None = None  # the baseline this window's net energy is taken against
    method: str | None = None  # "nvml_counter", "rapl", "nvml_counter+rapl"
    unavailable: str | None = None  # why energy is null
    started_s: float | None = None  # the meter's clock when the window opened

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
    """Energy of one job's devices; built once per worker, reused for every window.

    gpus, clock, sleep and rapl_root default to the real ones; tests pass a simulated GPU
    and a clock they control (the GPU is the only thing a fake stands in for).
    """

    def __init__(self, gpus_per_job: int, *, gpus: list[Any] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep,
                 rapl_root: Path | None = None) -> None:
        if gpus is None:
            self.gpus, gpu_reason = job_gpus(gpus_per_job)
        else:
            self.gpus, gpu_reason = list(gpus), None if gpus else "no GPU given"
        self.clock, self.sleep = clock, sleep
        # LLEM_POWERCAP_ROOT: where a container mounts the host's /sys/class/powercap
        root = rapl_root or Path(os.environ.get("LLEM_POWERCAP_ROOT") or POWERCAP)
        zones, rapl_reason = domains(root)
        self.rapl = RaplReader(zones) if zones else None
        self.idle_power_w: dict[str, float | None] = {g.uuid: None for g in self.gpus}
        self.last_idle: Idle | None = None
        self.reason = None if (self.gpus or self.rapl) else f"{gpu_reason}; {rapl_reason}"
        self.last_work: float | None = None  # clock() when the GPUs last finished work
        self._t0 = 0.0
        self._e0: dict[str, int | None] = {}
        self._sampler: Sampler | None = None

    @property
    def method(self) -> str | None:
        parts = (["nvml_counter"] if self.gpus else []) + (["rapl"] if self.rapl else [])
        return "+".join(parts) or None

    def gpu_info(self) -> list[dict[str, Any]]:
        return [g.info() for g in self.gpus]

    def worked(self) -> None:
        """Note that the GPUs just finished work (model load, warmup): idle is then 'hot'."""
        self.last_work = self.clock()

    def idle_baseline(self, seconds: float) -> Idle | None:
        """Mean power of each GPU over `seconds` of idling (model loaded, context up), from
        the energy counter, with the state the GPUs started in. None without GPUs."""
        if not self.gpus or seconds <= 0:  # off: no stale baseline of an earlier job
            self.idle_power_w = {g.uuid: None for g in self.gpus}
            self.last_idle = None
            return None
        state = [g.sample() for g in self.gpus]
        start = self.clock()
        since = start - self.last_work if self.last_work is not None else None
        e0 = {g.uuid: g.energy_mj() for g in self.gpus}
        t0 = self.clock()
        self.sleep(seconds)
        dt = self.clock() - t0
        for g in self.gpus:
            e1, s = g.energy_mj(), e0[g.uuid]
            self.idle_power_w[g.uuid] = (e1 - s) / 1000.0 / dt if e1 is not None and \
                s is not None and dt > 0 else None
        self.last_idle = Idle(seconds=dt, power_w=dict(self.idle_power_w),
                              temperature_c=_top(state, "temperature_c"),
                              sm_clock_mhz=_top(state, "sm_clock_mhz"), since_work_s=since)
        return self.last_idle

    def begin(self, sample_hz: float = 10.0, *, thread: bool = True) -> None:
        """Open the window: read counters, start sampling (thread=False: the caller calls
        sampler.take(), as tests with a simulated clock do)."""
        self._sampler = Sampler(self.gpus, sample_hz, clock=self.clock)
        if self.rapl:
            self.rapl.begin()
        self._e0 = {g.uuid: g.energy_mj() for g in self.gpus}
        self._t0 = self.clock()
        if thread:
            self._sampler.start(self._t0)
        else:
            self._sampler.t0 = self._t0
            self._sampler.take()

    @property
    def sampler(self) -> Sampler | None:
        return self._sampler

    def end(self) -> Window:
        t1 = self.clock()
        e1 = {g.uuid: g.energy_mj() for g in self.gpus}
        cpu = self.rapl.end() if self.rapl else {}
        rows = self._sampler.stop() if self._sampler else []
        self.last_work = t1
        energy: dict[str, float | None] = {}
        for g in self.gpus:
            a, b = self._e0.get(g.uuid), e1[g.uuid]
            energy[g.uuid] = (b - a) / 1000.0 if a is not None and b is not None else None
        return Window(duration_s=t1 - self._t0, gpu_energy_j=energy,
                      gpu_sampled_energy_j={g.uuid: integrate(rows, g.uuid) for g in self.gpus},
                      idle_power_w=dict(self.idle_power_w), cpu=cpu, samples=rows,
                      method=self.method, unavailable=self.reason, idle=self.last_idle,
                      started_s=self._t0)


def _top(readings: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in readings if r.get(key) is not None]
    return max(vals) if vals else None
