"""A simulated GPU for measurement tests: the GPU is the only thing a fake stands in for.

Power follows a function of the clock it is given; the energy counter integrates that power
exactly (midpoint rule at 1 ms) but, like NVML's, only updates every 100 ms. WorkGpu's energy
follows the work with a sensor offset; install_in_worker puts it into Ray's workers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any


class FakeClock:
    """A clock the test moves; sleep() advances it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class FakeGpu:
    def __init__(self, clock: Callable[[], float], power: Callable[[float], float],
                 uuid: str = "GPU-fake-0", index: int = 0, period_s: float = 0.1,
                 temperature_c: float = 40, sm_clock_mhz: float = 1980) -> None:
        self.clock, self.power, self.uuid, self.index = clock, power, uuid, index
        self.name = "Fake H100"
        self.period_s = period_s
        self.origin = clock()
        self.temperature_c, self.sm_clock_mhz = temperature_c, sm_clock_mhz
        self.counter_reads = 0

    def _joules(self, t: float) -> float:
        """Exact energy since origin up to t (midpoint rule, 1 ms steps)."""
        n = max(0, round((t - self.origin) / 0.001))
        return sum(self.power(self.origin + (k + 0.5) * 0.001) * 0.001 for k in range(n))

    def energy_mj(self) -> int:
        self.counter_reads += 1
        t = self.clock()
        updated = self.origin + math.floor((t - self.origin) / self.period_s) * self.period_s
        return int(self._joules(updated) * 1000)

    def power_w(self) -> float:
        return self.power(self.clock())

    def sample(self) -> dict[str, Any]:
        return {"power_w": self.power_w(), "temperature_c": self.temperature_c,
                "sm_clock_mhz": self.sm_clock_mhz, "gpu_util_pct": 50, "mem_used_mib": 1024.0}

    def info(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "index": self.index, "name": self.name,
                "power_limit_w": 700.0, "mig_mode": False, "memory_total_mib": 81559.0}


# Tokens the backend generated in this process (install_in_worker counts them).
GENERATED = [0]


class WorkGpu(FakeGpu):
    """A simulated GPU whose energy follows the work done, as a real one's does: idle power
    over time plus a fixed energy per generated token (GENERATED), so a workload costs the
    same energy however the busy host stretched its timings; its sensor reads `offset` off
    (0.05: 5% high), as boards of one model differ. The counter updates every period_s;
    samples carry what llem.measure.gpu.Gpu.sample gives, power at the idle rate."""

    def __init__(self, idle_w: float, joules_per_token: float, offset: float = 0.0,
                 uuid: str = "GPU-fake-0", index: int = 0, period_s: float = 0.1) -> None:
        self.idle_w, self.joules_per_token, self.offset = idle_w, joules_per_token, offset
        super().__init__(time.perf_counter, lambda t: self.idle_w * (1 + self.offset), uuid,
                         index, period_s)
        self._read_at, self._mj = self.origin, 0

    def energy_mj(self) -> int:
        self.counter_reads += 1
        t = self.clock()
        if t - self._read_at >= self.period_s:  # the counter moves once per period
            self._read_at = t
            true_j = self.idle_w * (t - self.origin) + self.joules_per_token * GENERATED[0]
            self._mj = int(true_j * (1 + self.offset) * 1000)
        return self._mj

    def sample(self) -> dict[str, Any]:
        return {**super().sample(), "power_source": "instant", "clocks_event_reasons": []}


# In a Ray worker: each GPU Ray gives it (CUDA_VISIBLE_DEVICES) is a WorkGpu whose sensor
# offset is OFFSETS_ENV's entry for that index ("0:-0.095,1:0.064"), idle at IDLE_W, with
# JOULES_PER_TOKEN for each token the noop backend generates.
OFFSETS_ENV, PERIOD_ENV = "LLEM_TEST_GPU_OFFSETS", "LLEM_TEST_GPU_PERIOD_S"
IDLE_W, JOULES_PER_TOKEN = 50.0, 2.0


def install_in_worker() -> None:
    """Ray's worker_process_setup_hook (`ray.init(runtime_env={"worker_process_setup_hook":
    "tests.support.fake_gpu.install_in_worker", "env_vars": {...}})`): the worker's meter
    finds simulated GPUs where NVML would find the real ones, and the noop backend's
    generated tokens are their work. A process without the variables is left as it is."""
    if OFFSETS_ENV not in os.environ:
        return
    import llem.backends.noop
    import llem.measure.meter

    offsets = dict(e.split(":") for e in os.environ[OFFSETS_ENV].split(","))
    period = float(os.environ.get(PERIOD_ENV, "0.1"))

    def job_gpus(expected: int) -> tuple[list[Any], str | None]:
        visible = [e for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e]
        if expected == 0 or not visible:
            return [], "job runs on the CPU (gpus_per_job: 0)"
        return [WorkGpu(IDLE_W, JOULES_PER_TOKEN, float(offsets.get(e, 0.0)),
                        f"GPU-fake-{e}", int(e), period) for e in visible[:expected]], None

    generate = llem.backends.noop.NoopBackend.generate

    def counted(self: Any, prompts: list[str], spec: Any) -> Any:
        records = generate(self, prompts, spec)
        GENERATED[0] += sum(r.output_tokens for r in records)
        return records

    llem.measure.meter.job_gpus = job_gpus  # type: ignore[assignment]
    llem.backends.noop.NoopBackend.generate = counted  # type: ignore[method-assign]
