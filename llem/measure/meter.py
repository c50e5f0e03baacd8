"""A measurement window: energy counters read at its edges, power sampled inside it.

Like Zeus' begin_window/end_window: the harness opens a window after the backend has
finished its warmup and closes it after the last output reached the host, so every joule
in the window belongs to the measured work. Missing sources give None plus a reason,
never a guess.

The meter is configured per job (configure: the job's measurement settings) and keeps,
per worker, the energy counter's update period (measured once, as Zeus measures it) and
the idle baseline when measurement.idle_baseline reuses it (per_worker, cached).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from llem.config.models import Measurement
from llem.measure.carbon import CpuEstimate
from llem.measure.gpu import Sampler, counter_period, job_gpus
from llem.measure.rapl import POWERCAP, RaplReader, domains

JUST_WORKED_S = 30.0  # idle measured sooner than this after work counts as "just worked"


@dataclass
class Idle:
    """An idle baseline and the state the GPUs were in while it was measured.

    Idle power depends on state (an H100 idles at ~72 W cold and ~123 W just after work,
    clocks still high), so the state is recorded with every result that subtracts it, and
    so is where the baseline came from (measurement.idle_baseline): measured for this job,
    or reused from earlier on this worker, its age and the check that let it be reused.
    """

    seconds: float
    power_w: dict[str, float | None]  # per GPU UUID: counter energy / seconds
    temperature_c: float | None  # hottest GPU at the start of the idle period
    sm_clock_mhz: float | None  # highest SM clock at the start
    since_work_s: float | None  # since this worker's GPUs last worked; None: not yet
    host_power_w: float | None = None  # RAPL package + DRAM over the idle period
    measured_at: float = 0.0  # the meter's clock when it was measured
    mode: str = "per_job"  # measurement.idle_baseline
    measured: bool = True  # measured for this job (False: reused)
    reason: str | None = "per_job"  # why it was measured: per_job, first, model_loaded, age,
    # check; None when reused
    age_s: float | None = 0.0  # since it was measured, when the job used it
    check_power_w: float | None = None  # the short check before reusing (cached), summed
    check_diff: float | None = None  # |check - baseline| / baseline

    @property
    def just_worked(self) -> bool | None:
        return None if self.since_work_s is None else self.since_work_s < JUST_WORKED_S

    @property
    def gpu_power_w(self) -> float | None:
        vals = list(self.power_w.values())
        return float(sum(v for v in vals if v is not None)) if vals and None not in vals \
            else None

    def columns(self) -> dict[str, Any]:
        return {"idle_s": self.seconds, "idle_temperature_c": self.temperature_c,
                "idle_sm_clock_mhz": self.sm_clock_mhz, "idle_since_work_s": self.since_work_s,
                "idle_just_worked": self.just_worked, "idle_baseline_source": self.mode,
                "idle_baseline_measured": self.measured, "idle_baseline_reason": self.reason,
                "idle_baseline_age_s": self.age_s, "idle_check_power_w": self.check_power_w,
                "idle_check_diff": self.check_diff, "idle_host_power_w": self.host_power_w}


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
    boundary: str = "gpu"  # measurement.boundary the window was opened with
    counter_period_s: float | None = None  # the energy counter's measured update period
    counter_period_measured: bool = True  # False: it was timed and did not change
    sample_hz: float | None = None
    cpu_estimate_j: float | None = None  # codecarbon's CPU model (node boundary, no RAPL)
    cpu_estimate_method: str | None = None
    measurement: Measurement | None = None  # the settings the meter was configured with

    @property
    def gpu_total_j(self) -> float | None:
        vals = list(self.gpu_energy_j.values())
        return None if not vals or any(v is None for v in vals) else \
            float(sum(v for v in vals if v))

    @property
    def recorded_boundary(self) -> str | None:
        """What energy_j covers: gpu (the job's GPUs' counters) or node (plus the host's CPU
        packages and DRAM from RAPL; a CPU job's RAPL energy is node too). None: no energy."""
        if self.gpu_energy_j:
            return self.boundary
        return "node" if self.cpu else None

    @property
    def energy_j(self) -> float | None:
        """Total measured energy inside the boundary: the GPU counters (boundary gpu), plus
        RAPL package and DRAM (boundary node; None without RAPL); RAPL alone for CPU jobs."""
        if self.gpu_energy_j:
            gpu = self.gpu_total_j
            if self.boundary == "node":
                return gpu + sum(self.cpu.values()) if gpu is not None and self.cpu else None
            return gpu
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
        self.rapl_reason = rapl_reason
        self.idle_power_w: dict[str, float | None] = {g.uuid: None for g in self.gpus}
        self.last_idle: Idle | None = None
        self.reason = None if (self.gpus or self.rapl) else f"{gpu_reason}; {rapl_reason}"
        self.last_work: float | None = None  # clock() when the GPUs last finished work
        self.m: Measurement | None = None  # the job's settings (configure); None: defaults
        # as before these settings existed (idle measured per job, boundary gpu)
        self.poll_s = 0.002  # counter polls while timing its edges (a read costs ~4 ms)
        self._period: float | None = None
        self._period_timed = False
        self._loads = 0  # model loads seen (loaded()): a reused baseline is per load
        self._cached: Idle | None = None
        self._cached_load = -1
        self._cpu_estimate: CpuEstimate | None = None  # made on first use (node, no RAPL)
        self._t0 = 0.0
        self._e0: dict[str, int | None] = {}
        self._sampler: Sampler | None = None
        self._hz: float | None = None

    @property
    def method(self) -> str | None:
        parts = (["nvml_counter"] if self.gpus else []) + (["rapl"] if self.rapl else [])
        return "+".join(parts) or None

    def gpu_info(self) -> list[dict[str, Any]]:
        return [g.info() for g in self.gpus]

    def worked(self) -> None:
        """Note that the GPUs just finished work (model load, warmup): idle is then 'hot'."""
        self.last_work = self.clock()

    def loaded(self) -> None:
        """A model was loaded: a reused idle baseline (per_worker, cached) is measured again
        (idle power with a CUDA context depends on what the context holds)."""
        self._loads += 1

    def configure(self, m: Measurement) -> None:
        """The job's measurement settings: idle baseline mode, boundary, validity thresholds."""
        self.m = m

    @property
    def boundary(self) -> str:
        return self.m.boundary if self.m is not None else "gpu"

    def counter_period_s(self) -> float | None:
        """The energy counter's update period, measured once per meter (a worker): the GPUs'
        counters (the slowest of them), else RAPL's; None without a counter or when it did
        not change while timed (then counter_period_measured is False)."""
        if not self._period_timed:
            self._period_timed = True
            reads: list[Any] = [g.energy_mj for g in self.gpus]
            if not reads and self.rapl:
                reads = [self.rapl.zones[0].read_uj]
            periods = [counter_period(r, self.clock, self.sleep, poll_s=self.poll_s)
                       for r in reads]
            self._period = None if not periods or None in periods else \
                max(p for p in periods if p is not None)
        return self._period

    @property
    def counter_period_measured(self) -> bool:
        return not (self._period_timed and self._period is None and (self.gpus or self.rapl))

    def _edge(self, g: Any) -> tuple[float, int | None]:
        """(time, value) of g's energy counter just after its next update, so that a short
        idle period is not off by up to one update period's energy at each end. Without a
        measured period, or when it does not update within 3 periods: the value now."""
        v0 = g.energy_mj()
        period = self._period
        if v0 is None or not period:
            return self.clock(), v0
        t_end = self.clock() + 3 * period
        while self.clock() < t_end:
            self.sleep(self.poll_s)
            v = g.energy_mj()
            if v is None:
                return self.clock(), None
            if v != v0:
                return self.clock(), v
        return self.clock(), v0

    def _idle_power(self, seconds: float) -> tuple[dict[str, float | None], float,
                                                   float | None]:
        """Each GPU's mean power over about `seconds` of idling, from counter edges; the
        seconds it covered (first GPU); the host's RAPL power over the same time."""
        self.counter_period_s()
        if self.rapl:
            self.rapl.begin()
        h0 = self.clock()
        starts = {g.uuid: self._edge(g) for g in self.gpus}
        t0 = min(t for t, _ in starts.values())
        # the end edge is the first update after this: about `seconds` after the start edge
        self.sleep(max(0.0, seconds - (self._period or 0.0) - (self.clock() - t0)))
        out: dict[str, float | None] = {}
        dt = seconds
        for i, g in enumerate(self.gpus):
            (a_t, a_e), (b_t, b_e) = starts[g.uuid], self._edge(g)
            ok = a_e is not None and b_e is not None and b_t > a_t
            out[g.uuid] = (b_e - a_e) / 1000.0 / (b_t - a_t) if ok else None  # type: ignore
            if i == 0:
                dt = b_t - a_t
        host = None
        if self.rapl:
            hs = self.clock() - h0
            host = sum(self.rapl.end().values()) / hs if hs > 0 else None
        return out, dt, host

    def _fresh(self, seconds: float, mode: str, reason: str, check: float | None = None,
               diff: float | None = None) -> Idle:
        state = [g.sample() for g in self.gpus]
        start = self.clock()
        since = start - self.last_work if self.last_work is not None else None
        power, dt, host = self._idle_power(seconds)
        idle = Idle(seconds=dt, power_w=power, temperature_c=_top(state, "temperature_c"),
                    sm_clock_mhz=_top(state, "sm_clock_mhz"), since_work_s=since,
                    host_power_w=host, measured_at=start, mode=mode, reason=reason,
                    check_power_w=check, check_diff=diff)
        if mode != "per_job":
            self._cached, self._cached_load = idle, self._loads
        return idle

    def _reuse(self, c: Idle, mode: str, check: float | None = None,
               diff: float | None = None) -> Idle:
        return replace(c, mode=mode, measured=False, reason=None,
                       age_s=self.clock() - c.measured_at, check_power_w=check,
                       check_diff=diff)

    def idle_baseline(self, seconds: float) -> Idle | None:
        """Mean power of each GPU over `seconds` of idling (model loaded, context up), from
        the energy counter, with the state the GPUs started in. None without GPUs.

        measurement.idle_baseline (configure; per_job when not configured): per_job measures
        it now; per_worker reuses the one measured after the model loaded; cached reuses it
        too unless it is older than idle_max_age_s or an idle_check_s check now differs from
        it by more than idle_check_tolerance, and then measures it again.
        """
        if not self.gpus or seconds <= 0:  # off: no stale baseline of an earlier job
            self.idle_power_w = {g.uuid: None for g in self.gpus}
            self.last_idle = None
            return None
        m = self.m
        mode = m.idle_baseline if m is not None else "per_job"
        c = self._cached if self._cached_load == self._loads else None
        if mode == "per_job":
            idle = self._fresh(seconds, mode, "per_job")
        elif c is None or c.gpu_power_w is None:
            idle = self._fresh(seconds, mode, "first" if self._cached is None else
                               "model_loaded")
        elif mode == "per_worker":
            idle = self._reuse(c, mode)
        else:
            assert m is not None
            base = c.gpu_power_w
            if self.clock() - c.measured_at > m.idle_max_age_s:
                idle = self._fresh(seconds, mode, "age")
            else:
                power, _, _ = self._idle_power(m.idle_check_s)
                vals = list(power.values())
                check = None if None in vals else float(sum(v for v in vals if v is not None))
                diff = abs(check - base) / base if check is not None and base else None
                if diff is None or diff > m.idle_check_tolerance:
                    idle = self._fresh(seconds, mode, "check", check, diff)
                else:
                    idle = self._reuse(c, mode, check, diff)
        self.idle_power_w = dict(idle.power_w)
        self.last_idle = idle
        return idle

    def begin(self, sample_hz: float = 10.0, *, thread: bool = True) -> None:
        """Open the window: read counters, start sampling (thread=False: the caller calls
        sampler.take(), as tests with a simulated clock do)."""
        self.counter_period_s()  # measured once, before the first window
        self._sampler = Sampler(self.gpus, sample_hz, clock=self.clock)
        self._hz = sample_hz
        if self.rapl:
            self.rapl.begin()
        elif self.boundary == "node":  # no RAPL: codecarbon's CPU model, as an estimate
            if self._cpu_estimate is None:
                self._cpu_estimate = CpuEstimate()
            self._cpu_estimate.start()
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
        est = self._cpu_estimate if not self.rapl and self.boundary == "node" else None
        unavailable = self.reason
        if self.gpus and self.boundary == "node" and not self.rapl:
            unavailable = f"boundary node needs RAPL for the host's energy: {self.rapl_reason}"
        return Window(duration_s=t1 - self._t0, gpu_energy_j=energy,
                      gpu_sampled_energy_j={g.uuid: integrate(rows, g.uuid) for g in self.gpus},
                      idle_power_w=dict(self.idle_power_w), cpu=cpu, samples=rows,
                      method=self.method, unavailable=unavailable, idle=self.last_idle,
                      started_s=self._t0, boundary=self.boundary,
                      counter_period_s=self._period,
                      counter_period_measured=self.counter_period_measured,
                      sample_hz=self._hz, measurement=self.m,
                      cpu_estimate_j=est.joules(t1 - self._t0) if est is not None else None,
                      cpu_estimate_method=est.method or est.reason if est is not None else None)


def _top(readings: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in readings if r.get(key) is not None]
    return max(vals) if vals else None
