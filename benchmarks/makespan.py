"""Makespan of a packed campaign: null-backend jobs of known duration on 4+ declared GPUs.

Every job sleeps a known time (noop backend, request_s, one batch, no warmup, no thermal
gaps), so the ideal makespan is known: the sum of durations over the GPUs (or the longest
job). The real Driver runs the campaign on a local Ray; what it adds is

    makespan / ideal                                                  goal <= 1.05
    scheduling overhead per job = GPU time between jobs, between load groups and after
        a slot's last job (round trips, group switches, packing), over the jobs    goal <= 20 ms
    GPU time outside jobs per job = (makespan x GPUs - sum of durations) / jobs: the
        above plus the Ray worker processes' start and the harness's own time in a job

(benchmarks.idle splits it). Groups are skewed on purpose (one model has half of the jobs),
so the figures depend on longest-first order and on splitting a big group onto idle GPUs.
Jobs last 1 s: a real measured job lasts 15 s or more, and at 0.3 s a Ray worker's start
(about 1-1.3 s per GPU slot on this 2-core machine) alone is 5-7% of the ideal (1.08x here).

    python -m benchmarks.makespan                 # 200 jobs, 4 GPUs, 1 s each
    python -m benchmarks.makespan job_s=0.3       # shorter jobs: the fixed costs show
    from benchmarks.makespan import run; run(jobs=200, gpus=4, job_s=0.3)   # -> dict
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure


def grid_text(jobs: int, models: int, job_s: float, big_share: float) -> str:
    """One big model group (big_share of the jobs) and models-1 small ones, seeds as points;
    every job sleeps job_s (noop request_s, one batch of one prompt)."""
    big = max(1, int(jobs * big_share))
    small = max(1, (jobs - big) // max(1, models - 1))
    return f"""
name: bench-pack
max_points: {big * models}
models: [{", ".join(f"m{i}" for i in range(models))}]
backends: [noop]
noop: {{request_s: {job_s}}}
grid:
  temperature: 0.5             # seeds sample (at temperature 0 they would be refused)
  seed: [{", ".join(str(i) for i in range(big))}]
include:
  - {{model: m0}}
{"".join(f"  - {{model: m{i}, seed: [{', '.join(str(s) for s in range(small))}]}}{chr(10)}"
         for i in range(1, models))}dataset: {{num_prompts: 1}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
resources: {{gpus_per_job: 1}}
"""


def run(jobs: int = 200, gpus: int = 4, job_s: float = 1.0, models: int = 6,
        big_share: float = 0.5) -> dict[str, Any]:
    """Run the campaign through llem's Driver; return the figures as a dict (models >= 2)."""
    from benchmarks.common import local_ray, settle
    from benchmarks.idle import from_store
    from llem import run_campaign
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.store.store import Store

    loaded = load_text(grid_text(jobs, models, job_s, big_share))
    n = sum(1 for _ in iter_jobs(loaded))
    tmp = Path(tempfile.mkdtemp(prefix="llem-bench-pack-"))
    with local_ray(num_gpus=gpus):
        settle()
        wall0, t0 = time.time(), time.perf_counter()
        summary = run_campaign(loaded, store=Store(tmp / "store"))
        makespan = time.perf_counter() - t0
        wall1 = time.time()
    assert summary.ok == n and not summary.failed, summary.errors[:3]
    busy = n * job_s
    ideal = max(busy / gpus, job_s)
    out = {"jobs": n, "gpus": gpus, "job_s": job_s, "groups": models,
           "workers": summary.workers, "model_loads": summary.model_loads,
           "makespan_s": makespan, "ideal_s": ideal, "makespan_over_ideal": makespan / ideal,
           "overhead_per_job_ms": (makespan * gpus - busy) / n * 1e3}
    idle = from_store(Store(tmp / "store"), loaded.campaign.name, wall0, wall1, gpus, busy)
    out["idle"] = idle
    out["scheduling_per_job_ms"] = idle.scheduling_s / n * 1e3
    print(f"{n} jobs of {job_s:g} s on {gpus} GPUs ({models} groups, the largest "
          f"{big_share:.0%}; {summary.workers} workers): makespan {makespan:.2f} s, ideal "
          f"{ideal:.2f} s -> {out['makespan_over_ideal']:.3f} x (goal <= 1.05); scheduling "
          f"overhead {out['scheduling_per_job_ms']:.1f} ms/job (goal <= 20); GPU time "
          f"outside jobs {out['overhead_per_job_ms']:.1f} ms/job")
    print(f"  {idle.line()}")
    return out


def figures(r: dict[str, Any]) -> list[Figure]:
    note = f"{r['jobs']} jobs of {r['job_s']:g} s, {r['gpus']} GPUs, {r['groups']} groups"
    return [Figure("1 makespan", "packed campaign / ideal", r["makespan_s"], r["ideal_s"], "s",
                   "llem", "ideal", "<= 1.05", note),
            Figure("2 overhead", "scheduling overhead per job (between jobs, groups, tail)",
                   r["scheduling_per_job_ms"], r["job_s"] * 1e3, "ms/job", "llem", "job",
                   "value <= 20", note),
            Figure("2 overhead", "GPU time outside jobs per job (+ worker starts, harness)",
                   r["overhead_per_job_ms"], r["job_s"] * 1e3, "ms/job", "llem", "job", None,
                   note)]


def main() -> list[Figure]:
    return figures(run())


if __name__ == "__main__":
    kw = dict(a.split("=", 1) for a in sys.argv[1:])
    run(**{k: (float(v) if "." in v else int(v)) for k, v in kw.items()})
