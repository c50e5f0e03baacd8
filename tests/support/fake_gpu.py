"""A simulated GPU for measurement tests: the GPU is the only thing a fake stands in for.

Power follows a function of the clock it is given; the energy counter integrates that power
exactly (midpoint rule at 1 ms) but, like NVML's, only updates every 100 ms.
"""

from __future__ import annotations

import math
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
