"""Everything that talks to NVML, and the only reader of CUDA_VISIBLE_DEVICES.

NVML indexes physical GPUs and ignores CUDA_VISIBLE_DEVICES, so a job's GPUs are resolved
here to NVML handles and identified by UUID everywhere else. Workers are started with
CUDA_DEVICE_ORDER=PCI_BUS_ID (WORKER_ENV) so that CUDA's indices follow NVML's order.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

WORKER_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

_nvml: Any = None
_nvml_error: str | None = None


def nvml() -> Any:
    """The initialised pynvml module, or None (see nvml_unavailable_reason)."""
    global _nvml, _nvml_error
    if _nvml is None and _nvml_error is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _nvml = pynvml
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, driver errors
            _nvml_error = f"NVML unavailable: {type(exc).__name__}: {exc}".strip()
    return _nvml


def nvml_unavailable_reason() -> str | None:
    nvml()
    return _nvml_error


@dataclass
class Gpu:
    """One of the job's GPUs, as NVML sees it."""

    uuid: str
    index: int  # NVML (physical) index
    name: str
    handle: Any = field(repr=False)

    def energy_mj(self) -> int | None:
        """NVML's total energy counter (mJ since driver load); ~4 ms per read on H100."""
        try:
            return int(nvml().nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception:
            return None

    def power_w(self) -> float | None:
        """Instantaneous power where the driver offers it (Hopper's PowerUsage is a 1 s mean)."""
        return self.power_reading()[0]

    def power_reading(self) -> tuple[float | None, str | None]:
        """(watts, source): 'instant' from NVML_FI_DEV_POWER_INSTANT, else 'average' from
        nvmlDeviceGetPowerUsage (a 1 s running mean on Hopper); (None, None) when neither
        answers."""
        n = nvml()
        try:
            fv = n.nvmlDeviceGetFieldValues(self.handle, [n.NVML_FI_DEV_POWER_INSTANT])[0]
            if fv.nvmlReturn == 0:
                return float(fv.value.uiVal) / 1000.0, "instant"
        except Exception:
            pass
        try:
            return float(n.nvmlDeviceGetPowerUsage(self.handle)) / 1000.0, "average"
        except Exception:
            return None, None

    def power_source(self) -> str | None:
        """Which reading power_w() gets: 'instant' (NVML_FI_DEV_POWER_INSTANT) or 'average'
        (nvmlDeviceGetPowerUsage, a 1 s running mean on Hopper); recorded by the GPU proof."""
        return self.power_reading()[1]

    def clock_events(self) -> list[str] | None:
        """Names of the clock event reasons active now (nvmlDeviceGetCurrentClocksEventReasons,
        formerly ...ThrottleReasons, on older bindings); None when the driver cannot say."""
        mask = self.call("nvmlDeviceGetCurrentClocksEventReasons")
        if mask is None:
            mask = self.call("nvmlDeviceGetCurrentClocksThrottleReasons")
        return None if mask is None else event_names(int(mask))

    def call(self, name: str, *args: Any) -> Any:
        """An NVML device query by name; None when this driver/binding lacks it or it fails."""
        fn = getattr(nvml(), name, None)
        if fn is None:
            return None
        try:
            return fn(self.handle, *args)
        except Exception:
            return None

    def sample(self) -> dict[str, Any]:
        """Power (and its source), clock event reasons, temperature, SM clock, utilisation and
        memory used, now."""
        n = nvml()
        util = self.call("nvmlDeviceGetUtilizationRates")
        mem = self.call("nvmlDeviceGetMemoryInfo")
        power, source = self.power_reading()
        return {
            "power_w": power,
            "power_source": source,
            "clocks_event_reasons": self.clock_events(),
            "temperature_c": self.call("nvmlDeviceGetTemperature", n.NVML_TEMPERATURE_GPU),
            "sm_clock_mhz": self.call("nvmlDeviceGetClockInfo", n.NVML_CLOCK_SM),
            "gpu_util_pct": util.gpu if util is not None else None,
            "mem_used_mib": mem.used / 2**20 if mem is not None else None,
        }

    def info(self) -> dict[str, Any]:
        """Static facts recorded with each result."""
        mig = self.call("nvmlDeviceGetMigMode")
        limit = self.call("nvmlDeviceGetEnforcedPowerLimit")
        mem = self.call("nvmlDeviceGetMemoryInfo")
        return {"uuid": self.uuid, "index": self.index, "name": self.name,
                "power_limit_w": limit / 1000.0 if limit else None,
                "mig_mode": bool(mig[0]) if mig else False,
                "memory_total_mib": mem.total / 2**20 if mem is not None else None}


# NVML's clock event reasons (nvmlClocksEventReason*, the bits of
# nvmlDeviceGetCurrentClocksEventReasons; board_limit and reliability are newer drivers')
CLOCK_EVENTS = (
    (0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"), (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"), (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"), (0x200, "board_limit"), (0x400, "reliability"))


def event_names(mask: int) -> list[str]:
    """The reasons set in a clock event bit mask, in bit order (unknown bits as 'bit_N')."""
    names = [name for bit, name in CLOCK_EVENTS if mask & bit]
    known = sum(bit for bit, _ in CLOCK_EVENTS)
    names += [f"bit_{i}" for i in range(64) if mask & ~known & (1 << i)]
    return names


def counter_period(read: Callable[[], float | int | None], clock: Callable[[], float],
                   sleep: Callable[[float], None], changes: int = 4, poll_s: float = 0.002,
                   timeout_s: float = 3.0) -> float | None:
    """The update period of an energy counter, measured as Zeus measures its power counter's:
    poll it until its value changes, then time the next `changes` changes; the median gap.

    NVML's counter updates every ~100 ms on H100 and one read costs ~4 ms, so this takes
    about (changes + 1) periods. None when it did not change `changes` times in timeout_s
    (a stuck or missing counter).
    """
    t_end = clock() + timeout_s
    last = read()
    if last is None:
        return None
    stamps: list[float] = []
    while len(stamps) <= changes and clock() < t_end:
        sleep(poll_s)
        v = read()
        if v is None:
            return None
        if v != last:
            stamps.append(clock())
            last = v
    if len(stamps) <= changes:
        return None
    gaps = sorted(b - a for a, b in pairwise(stamps))
    return gaps[len(gaps) // 2]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def visible_devices() -> str | None:
    """CUDA_VISIBLE_DEVICES as Ray set it for this worker (recorded with each result)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def job_gpus(expected: int) -> tuple[list[Gpu], str | None]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES), matched to NVML by UUID/index.

    Returns ([], reason) when there are none to measure.
    """
    if expected == 0:
        return [], "job runs on the CPU (gpus_per_job: 0)"
    n = nvml()
    if n is None:
        return [], _nvml_error
    visible = visible_devices()
    count = n.nvmlDeviceGetCount()
    if visible is None:
        entries = [str(i) for i in range(count)]
    else:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
    gpus: list[Gpu] = []
    for e in entries[:expected]:
        if e.isdigit():
            h = n.nvmlDeviceGetHandleByIndex(int(e))
        else:
            h = n.nvmlDeviceGetHandleByUUID(e)
        gpus.append(Gpu(_text(n.nvmlDeviceGetUUID(h)), int(n.nvmlDeviceGetIndex(h)),
                        _text(n.nvmlDeviceGetName(h)), h))
    if len(gpus) < expected:
        return gpus, f"expected {expected} GPUs, CUDA_VISIBLE_DEVICES={visible!r}"
    return gpus, None


def visible_memory_used_mib() -> tuple[dict[str, float] | None, str | None]:
    """Memory used now on each GPU this process may use (CUDA_VISIBLE_DEVICES), by UUID.

    For the server launcher: a stopped server must give its memory back, and only the
    driver (not the server's own, gone, process) can say so. (None, reason) without NVML,
    without a visible GPU, or when a query fails.
    """
    n = nvml()
    if n is None:
        return None, _nvml_error
    visible = visible_devices()
    try:
        if visible is None:
            entries = [str(i) for i in range(n.nvmlDeviceGetCount())]
        else:
            entries = [e.strip() for e in visible.split(",") if e.strip()]
        if not entries:
            return None, f"no GPU is visible (CUDA_VISIBLE_DEVICES={visible!r})"
        out: dict[str, float] = {}
        for e in entries:
            h = (n.nvmlDeviceGetHandleByIndex(int(e)) if e.isdigit()
                 else n.nvmlDeviceGetHandleByUUID(e))
            out[_text(n.nvmlDeviceGetUUID(h))] = n.nvmlDeviceGetMemoryInfo(h).used / 2**20
    except Exception as exc:  # a GPU fallen off the bus, a MIG UUID this driver cannot open
        return None, f"NVML query failed: {type(exc).__name__}: {exc}"
    return out, None


def local_gpus() -> tuple[list[dict[str, Any]], str | None]:
    """Every GPU NVML sees on this machine (not only a job's), for `llem doctor` and dry runs:
    Gpu.info() plus whether the energy counter answers. ([], reason) without NVML."""
    n = nvml()
    if n is None:
        return [], _nvml_error
    out: list[dict[str, Any]] = []
    try:
        for i in range(n.nvmlDeviceGetCount()):
            h = n.nvmlDeviceGetHandleByIndex(i)
            g = Gpu(_text(n.nvmlDeviceGetUUID(h)), i, _text(n.nvmlDeviceGetName(h)), h)
            out.append({**g.info(), "energy_counter": g.energy_mj() is not None})
    except Exception as exc:  # a GPU fallen off the bus, a driver mismatch
        return out, f"NVML query failed: {type(exc).__name__}: {exc}"
    return out, None


def system_info() -> dict[str, Any]:
    """Driver and CUDA driver versions, or empty when NVML is unavailable."""
    n = nvml()
    if n is None:
        return {}
    out: dict[str, Any] = {"driver_version": _text(n.nvmlSystemGetDriverVersion())}
    try:
        v = n.nvmlSystemGetCudaDriverVersion_v2()
        out["cuda_version"] = f"{v // 1000}.{(v % 1000) // 10}"
    except Exception:
        out["cuda_version"] = None
    return out


class Sampler:
    """A thread that samples every GPU at hz into rows for the samples table.

    Power reads cost microseconds; the energy counter is not read here (ms per read).
    """

    def __init__(self, gpus: list[Gpu], hz: float, clock: Any = time.perf_counter) -> None:
        self.gpus, self.period, self.clock = gpus, 1.0 / hz, clock
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def start(self, t0: float | None = None) -> None:
        """Sample from now on; times are seconds since t0 (the window's start)."""
        self.t0 = self.clock() if t0 is None else t0
        if not self.gpus:
            return
        self._thread = threading.Thread(target=self._run, name="llem-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = self.clock()
        while not self._stop.is_set():
            self.take()
            next_t += self.period
            self._stop.wait(max(0.0, next_t - self.clock()))

    def take(self) -> None:
        t = self.clock() - self.t0
        for g in self.gpus:
            self.rows.append({"t_s": t, "gpu_uuid": g.uuid, "gpu_index": g.index, **g.sample()})

    def stop(self) -> list[dict[str, Any]]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.gpus and not (self.rows and self.rows[-1]["t_s"] == self.clock() - self.t0):
            self.take()  # a last sample at the window's end
        return self.rows
