"""What the benchmarks share: a local Ray with declared GPUs, started once or reused, and
the timestamped progress line of the GPU scripts (light: Ray is imported only when used)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


def log(msg: str) -> None:
    """One progress line with the wall-clock time, flushed (a device call's log is read
    as it comes back, and a cut-off run keeps what it printed)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@contextmanager
def local_ray(num_gpus: int = 4, num_cpus: int = 2) -> Iterator[None]:
    """A running Ray with at least num_gpus declared GPUs (this machine has none).

    A Ray already running in this process (the fast test's) is used as it is and left up;
    otherwise llem's own connect() starts an embedded one, shut down on exit.
    """
    import ray

    from llem.scheduler.cluster import connect

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= num_gpus:
        yield
        return
    if ray.is_initialized():
        ray.shutdown()
    connect(None, num_cpus=num_cpus, num_gpus=num_gpus)
    settle()
    try:
        yield
    finally:
        ray.shutdown()


def ray_address() -> str | None:
    """The address of the Ray this process is connected to, for a child process to join."""
    import ray

    return ray.get_runtime_context().gcs_address if ray.is_initialized() else None


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def settle(busy_below: float = 0.25, max_s: float = 10.0, step_s: float = 0.5) -> float:
    """Wait until the machine's CPUs are mostly idle; returns the seconds waited.

    A fresh Ray keeps starting its own processes for seconds after ray.init returns, and
    killed worker processes of a previous run exit in the background: on 2 cores either
    would slow the next timed run's worker starts (by 0.3-0.4 s per GPU slot here). Timed
    runs start on a settled machine, each side alike; the wait is never counted.
    """
    t0 = time.perf_counter()
    try:
        busy, total = _cpu_ticks()
        while time.perf_counter() - t0 < max_s:
            time.sleep(step_s)
            busy2, total2 = _cpu_ticks()
            if total2 > total and (busy2 - busy) / (total2 - total) < busy_below:
                break
            busy, total = busy2, total2
    except OSError:  # no /proc (not Linux): a fixed pause instead
        time.sleep(2.0)
    return time.perf_counter() - t0
