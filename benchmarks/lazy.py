"""Lazy expansion: time to first job dispatched and driver peak memory, 1e6-point grid.

Each grid runs in a fresh subprocess (its peak RSS is its own and never goes down)
through the real path: grid text -> config -> Driver.run on a local Ray, stopped the
moment the first job is handed to a worker actor. A 1-point grid run the same way is the
reference: if expansion is lazy, a million points cost what one point costs.
Ray's start is timed apart (a fixed cost of any Ray driver, not of the grid).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import Figure


def grid_text(points: int) -> str:
    """A noop grid of `points` points: 10 models x the rest on batch size, tokens, seed."""
    models = min(10, points)
    rest = points // models
    batch = min(100, rest)
    tokens = min(100, rest // batch)
    seeds = rest // (batch * tokens)
    assert models * batch * tokens * seeds == points, points
    return f"""
name: bench-lazy
max_points: {points}
models: [{", ".join(f"m{i}" for i in range(models))}]
backends: [noop]
grid:
  temperature: 0.5             # seeds sample (at temperature 0 they would be refused)
  batch_size: [{", ".join(str(i + 1) for i in range(batch))}]
  max_new_tokens: [{", ".join(str(i + 1) for i in range(tokens))}]
  seed: [{", ".join(str(i) for i in range(seeds))}]
resources: {{gpus_per_job: 1}}
"""


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, the high-water mark of its own memory map.

    resource.getrusage's ru_maxrss is not used: Linux carries the parent's high-water mark
    into a child across fork + exec, so a child of a 600 MB parent reports >= 600 MB.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Dispatched(BaseException):
    """Raised at the first dispatch to stop the driver there (BaseException: no handler
    for ordinary errors catches it; the driver's cleanup still runs)."""


def child(points: int, store: str) -> dict[str, float]:
    """In the subprocess: time config + driver up to the first dispatched job.

    The first dispatch is the driver's first Job.payload() call: the payload is built only
    to hand a job to a worker actor (`actor.run.remote(job.payload(), ...)`).
    """
    t0 = time.perf_counter()
    import ray

    from llem import run_campaign
    from llem.config.job import Job
    from llem.config.load import load_text
    from llem.scheduler.cluster import connect
    from llem.store.store import Store

    connect(None, num_cpus=1, num_gpus=4)
    ray_s = time.perf_counter() - t0
    text = grid_text(points)
    rss_before = peak_rss_mb()
    first: list[float] = []

    def payload(self: Job) -> dict[str, object]:
        first.append(time.perf_counter() - t0)
        raise _Dispatched

    Job.payload = payload  # type: ignore[method-assign]
    t0 = time.perf_counter()
    loaded = load_text(text)
    with contextlib.suppress(_Dispatched, KeyboardInterrupt):
        run_campaign(loaded, store=Store(store))
    peak = peak_rss_mb()
    ray.shutdown()
    if not first:
        raise RuntimeError("the driver finished without dispatching a job")
    return {"points": points, "first_dispatch_s": first[0], "peak_rss_mb": peak,
            "rss_before_grid_mb": rss_before, "ray_start_s": ray_s}


def measure(points: int) -> dict[str, float]:
    """One grid in a fresh subprocess; it joins this process's Ray if there is one."""
    from benchmarks.common import ray_address

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    address = ray_address()
    if address:
        env["RAY_ADDRESS"] = address
    with tempfile.TemporaryDirectory(prefix="llem-bench-lazy-") as tmp:
        out = subprocess.run([sys.executable, "-m", "benchmarks.lazy", "--child", str(points),
                              tmp], capture_output=True, text=True, check=False, env=env,
                             cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        raise RuntimeError(f"lazy child failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(points: int = 1_000_000) -> list[Figure]:
    return figures(measure(points), measure(1))


def figures(big: dict[str, float], small: dict[str, float]) -> list[Figure]:
    label = f"{big['points']:.0e}".replace("e+0", "e")
    print(f"{label} points: first dispatch {big['first_dispatch_s']:.3f} s, peak RSS "
          f"{big['peak_rss_mb']:.0f} MB ({big['rss_before_grid_mb']:.0f} MB before the grid; "
          f"Ray start {big['ray_start_s']:.1f} s, not counted)")
    print(f"1 point: first dispatch {small['first_dispatch_s']:.3f} s, peak RSS "
          f"{small['peak_rss_mb']:.0f} MB")
    return [
        Figure("4 lazy", f"time to first dispatch, {label} vs 1 point", big["first_dispatch_s"],
               small["first_dispatch_s"], "s", f"{label} pts", "1 pt", "value < 2"),
        Figure("4 lazy", f"driver peak RSS, {label} vs 1 point", big["peak_rss_mb"],
               small["peak_rss_mb"], "MB", f"{label} pts", "1 pt", "value < 300"),
    ]


def main() -> list[Figure]:
    return run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]), sys.argv[3])))
    else:
        main()
