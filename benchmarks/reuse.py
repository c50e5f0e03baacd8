"""Model reuse: 24 points over 2 models on the tiny model (CPU), llem vs reloading per job.

llem runs jobs that share a load key on one worker, loading each model once; the
predecessor reloaded the model for every point. Both sides run the same jobs here.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.figures import Figure

GRID = """
name: bench-reuse
models: [{a}, {b}]
backends: [transformers]
grid:
  dtype: float32
  batch_size: {batch_sizes}
  max_new_tokens: {tokens}
  streaming: {streaming}
dataset: {{num_prompts: 4}}
measurement: {{warmup_requests: 0}}
"""


def run(batch_sizes: str = "[1, 2, 4]", tokens: str = "[4, 8]",
        streaming: str = "[false, true]") -> list[Figure]:
    """24 points by default (2 models x 3 batch sizes x 2 lengths x streaming on/off)."""
    from benchmarks.common import local_ray
    from llem import run_campaign
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.harness.runner import JobRunner
    from llem.models.tiny import build_tiny_model
    from llem.prompts.dataset import load_prompts
    from llem.store.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="llem-bench-"))
    os.environ.setdefault("LLEM_CACHE", str(tmp / "cache"))
    a = build_tiny_model(tmp / "model-a", seed=1)
    b = build_tiny_model(tmp / "model-b", seed=2)
    loaded = load_text(GRID.format(a=a, b=b, batch_sizes=batch_sizes, tokens=tokens,
                                   streaming=streaming))
    jobs = list(iter_jobs(loaded))
    prompts = load_prompts(jobs[0].point.dataset, tmp)

    t0 = time.perf_counter()
    reloads = 0
    for job in jobs:  # the predecessor: a fresh load for every point, one after another
        p = job.point
        runner = JobRunner(p.backend, {"model": p.model, "dtype": p.dtype,
                                       "engine": dict(p.engine), "gpus": 0}, 0)
        result = runner.run(job.payload(), prompts)
        assert result.run.status == "ok", result.run.error
        reloads += runner.loads
        runner.close()
    per_job_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    kept: dict[str, JobRunner] = {}
    for job in jobs:  # llem's reuse without Ray: one runner per load key, in this process
        p = job.point
        if job.load_key not in kept:
            kept[job.load_key] = JobRunner(p.backend, {"model": p.model, "dtype": p.dtype,
                                                       "engine": dict(p.engine), "gpus": 0}, 0)
        result = kept[job.load_key].run(job.payload(), prompts)
        assert result.run.status == "ok", result.run.error
    kept_loads = sum(r.loads for r in kept.values())
    for r in kept.values():
        r.close()
    kept_s = time.perf_counter() - t0

    with local_ray(num_gpus=0):
        t0 = time.perf_counter()
        summary = run_campaign(loaded, store=Store(tmp / "store"))
        llem_s = time.perf_counter() - t0
    assert summary.ok == len(jobs), summary.errors
    print(f"jobs: {len(jobs)} over 2 models")
    print(f"model loads: llem {summary.model_loads} vs reload-per-job {reloads}")
    print(f"wall time:   llem {llem_s:.1f} s (Ray start included) vs reload-per-job "
          f"{per_job_s:.1f} s -> ratio {llem_s / per_job_s:.2f}; in one process, a runner per "
          f"model ({kept_loads} loads) {kept_s:.2f} s -> {kept_s / per_job_s:.2f}")
    note = f"{len(jobs)} jobs, 2 models"
    return [Figure("3 reuse", "model loads llem / reload per job", summary.model_loads,
                   reloads, "loads", "llem", "per job", None, note),
            Figure("3 reuse", "wall time, one process: runner per model / reload per job",
                   kept_s, per_job_s, "s", "per model", "per job", None, note),
            Figure("3 reuse", "wall time llem on Ray (worker start incl.) / reload per job",
                   llem_s, per_job_s, "s", "llem", "per job", None, note)]


def main() -> list[Figure]:
    return run()
