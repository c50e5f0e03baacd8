"""Campaign makespan: one null-backend grid run by llem, one job after another, and Ray Tune.

The grid's jobs have known durations (noop backend: token_s x max_new_tokens per batch, no
warmup), so the ideal makespan is known: the durations bin-packed onto the GPUs (longest first;
never below sum / GPUs nor below the longest job). All three sides run the very same jobs
through llem's JobRunner, on the same local Ray with 4 declared GPUs:

  llem        the real Driver: load groups on worker actors, results into the store
  sequential  the predecessor's way: one job after another in one process, a fresh
              backend per job, each result written to the store
  Ray Tune    tune.grid_search over the jobs, one GPU per trial (its defaults otherwise)

The jobs last 0.17-5.4 s (96 jobs, 8 models, ideal 40.8 s). A measured GPU job lasts at least
15 s (5 s idle baseline, warmup, 10 s window), so these are still short; what a scheduler
costs per job shows. Shorter still, a Ray worker process's start (about 1 s per GPU slot
on this 2-core machine, in any Ray-based scheduler) outweighs everything else:
run(tokens=(2, 4, 6, 8, 12, 16, 20, 24, 30), batches=(1, 2, 4), token_s=0.005) is the
216-job, 8.5 s-ideal grid earlier sessions recorded (1.20-1.22x ideal).

    python -m benchmarks.makespan_compare              # the grid by all three
    python -m benchmarks.makespan_compare load_s=0.5   # each backend construction sleeps
        0.5 s: llem loads once per worker, Tune and the loop once per job (llem and Tune)
"""

from __future__ import annotations

import heapq
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

GPUS = 4
TOKEN_S = 0.0425  # seconds per generated token of the noop backend
TOKENS = (4, 8, 12, 16, 24, 32)  # max_new_tokens of the grid
BATCHES = (1, 4)  # batch sizes over 4 prompts: 4 batches or 1


def grid_text(models: int = 8, tokens: tuple[int, ...] = TOKENS,
              batches: tuple[int, ...] = BATCHES, name: str = "bench-makespan",
              token_s: float = TOKEN_S, load_s: float = 0.0) -> str:
    """models x tokens x batches noop jobs; a job lasts token_s x max_new_tokens x batches."""
    return f"""
name: {name}
max_points: {models * len(tokens) * len(batches)}
models: [{", ".join(f"m{i}" for i in range(models))}]
backends: [noop]
noop: {{token_s: {token_s}, load_s: {load_s}}}
grid:
  max_new_tokens: [{", ".join(map(str, tokens))}]
  batch_size: [{", ".join(map(str, batches))}]
dataset: {{num_prompts: {max(batches)}}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
resources: {{gpus_per_job: 1}}
"""


def durations(jobs: list[Any]) -> list[float]:
    """Each job's known duration: one sleep of token_s x max_new_tokens per batch."""
    out = []
    for j in jobs:
        p = j.point
        batches = -(-p.dataset.num_prompts // p.batch_size)
        out.append(float(p.engine.get("token_s", 0)) * p.max_new_tokens * batches
                   + float(p.engine.get("request_s", 0)) * batches)
    return out


def ideal_makespan(durs: list[float], gpus: int = GPUS) -> float:
    """The ideal: sum of durations / GPUs, or the longest job if that is longer. No
    schedule beats it; for many short jobs a perfect packing comes within a job of it."""
    return max(sum(durs) / gpus, max(durs, default=0.0))


def lpt_makespan(durs: list[float], gpus: int = GPUS) -> float:
    """Longest-first greedy packing of the durations (a good scheduler with no per-job
    cost; within 4/3 of the optimal packing), printed beside the ideal."""
    loads = [0.0] * gpus
    for d in sorted(durs, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def sequential(jobs: list[Any], prompts: list[str], store: Any) -> float:
    """The predecessor: each job in turn, a fresh backend per job, result written."""
    from llem.harness.runner import JobRunner

    t0 = time.perf_counter()
    for job in jobs:
        p = job.point
        runner = JobRunner(p.backend, {"model": p.model, "dtype": p.dtype,
                                       "engine": dict(p.engine), "gpus": 0}, 0)
        result = runner.run(job.payload(), prompts)
        assert result.run.status == "ok", result.run.error
        store.write_result(result)
        runner.close()
    return time.perf_counter() - t0


def _trial(config: dict[str, Any], payloads: list[dict[str, Any]],
           prompts: list[str]) -> None:
    """One Tune trial: one job, a fresh backend (Tune has no notion of a shared load)."""
    from ray import tune

    from llem.harness.runner import JobRunner

    payload = payloads[config["job"]]
    p = payload["point"]
    runner = JobRunner(p["backend"], {"model": p["model"], "dtype": p["dtype"],
                                      "engine": dict(p["engine"]), "gpus": 0}, 0)
    result = runner.run(payload, prompts)
    runner.close()
    tune.report({"ok": result.run.status == "ok", "duration_s": result.run.duration_s or 0.0})


def ray_tune(jobs: list[Any], prompts: list[str], storage: Path,
             reuse_actors: bool = True) -> float:
    """tune.grid_search over the jobs, one GPU per trial (and no CPU, as llem's actors).

    reuse_actors=True is Tune at its fastest (a trial actor serves the next trial instead of
    a fresh process per trial); the trial still builds its backend anew, as Tune knows no
    shared model load.
    """
    from ray import cloudpickle, tune

    import benchmarks

    cloudpickle.register_pickle_by_value(benchmarks)  # Tune's workers need not import it
    payloads = [j.payload() for j in jobs]
    trainable = tune.with_resources(
        tune.with_parameters(_trial, payloads=payloads, prompts=prompts),
        {"cpu": 0, "gpu": 1})
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(reuse_actors=reuse_actors),
                       param_space={"job": tune.grid_search(list(range(len(payloads))))},
                       run_config=tune.RunConfig(storage_path=str(storage), name="makespan",
                                                 verbose=0))
    t0 = time.perf_counter()
    grid = tuner.fit()
    elapsed = time.perf_counter() - t0
    bad = [r for r in grid if r.error or not r.metrics.get("ok")]
    assert not bad and len(grid) == len(jobs), f"{len(bad)} Tune trials failed"
    return elapsed


def llem_driver(loaded: Any, store: Any, label: str = "llem",
                nominal_s: float | None = None) -> float:
    """llem's real Driver on the connected Ray; the wall time of Driver.run. Also prints
    when the first result arrived (actor start and first load) and the model loads, and
    with nominal_s (the jobs' summed durations) where the GPU time outside jobs went."""
    from benchmarks.idle import from_store
    from llem import run_campaign

    first: list[float] = []

    def on_result(run: Any, summary: Any) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    wall0, t0 = time.time(), time.perf_counter()
    summary = run_campaign(loaded, store=store, on_result=on_result)
    elapsed = time.perf_counter() - t0
    wall1 = time.time()
    assert summary.ok == summary.total and not summary.failed, summary.errors[:3]
    print(f"  {label}: {summary.ok} jobs in {elapsed:.2f} s, first result after "
          f"{first[0]:.2f} s, {summary.model_loads} model loads, {summary.workers} workers")
    if nominal_s is not None:
        idle = from_store(store, loaded.campaign.name, wall0, wall1, GPUS, nominal_s)
        print(f"    {idle.line()}")
    return elapsed


def overhead(n: int, tmp: Path) -> tuple[float, float]:
    """Per-job cost of n zero-length jobs (4 load groups): llem's Driver on Ray vs the same
    jobs run in-process by JobRunner with the same store writes (no Ray, no scheduling).

    Returns seconds per job for each; llem's includes starting its actors.
    """
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.prompts.dataset import load_prompts
    from llem.store.store import Store

    per_model = max(1, n // GPUS)
    loaded = load_text(grid_text(GPUS, tuple(range(1, per_model + 1)), (1,),
                                 name="bench-overhead", token_s=0))
    jobs = list(iter_jobs(loaded))
    prompts = load_prompts(jobs[0].point.dataset, tmp)
    llem_s = llem_driver(loaded, Store(tmp / "overhead-llem"), "llem, zero-length jobs")
    some = jobs[::max(1, len(jobs) // 250)]  # the in-process cost per job is flat: 250 do
    inline_s = sequential(some, prompts, Store(tmp / "overhead-inline"))
    return llem_s / len(jobs), inline_s / len(some)


def run(models: int = 8, tokens: tuple[int, ...] = TOKENS,
        batches: tuple[int, ...] = BATCHES, token_s: float = TOKEN_S, sides: tuple[str, ...] = (
            "llem", "sequential", "tune"), zero_jobs: int = 1000,
        load_s: float = 0.0) -> list[Figure]:
    """load_s > 0: every backend construction ("model load") sleeps that long; llem loads
    once per worker, Tune and the one-after-another loop once per job. The ideal counts the
    jobs' durations only."""
    import logging

    from benchmarks.common import local_ray, settle
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.prompts.dataset import load_prompts
    from llem.store.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="llem-bench-makespan-"))
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    loaded = load_text(grid_text(models, tokens, batches, token_s=token_s, load_s=load_s))
    jobs = list(iter_jobs(loaded))
    prompts = load_prompts(jobs[0].point.dataset, tmp)
    durs = durations(jobs)
    ideal = ideal_makespan(durs)
    lpt = lpt_makespan(durs)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    took: dict[str, float] = {}
    per_job: tuple[float, float] | None = None
    with local_ray(GPUS):
        if zero_jobs:
            per_job = overhead(zero_jobs, tmp)
        for side in sides:
            settle()  # each side starts on a settled machine (the last one's workers exit)
            if side == "llem":
                took[side] = llem_driver(loaded, Store(tmp / "llem"), nominal_s=sum(durs))
            elif side == "sequential":
                took[side] = sequential(jobs, prompts, Store(tmp / "sequential"))
            elif side == "tune":
                took[side] = ray_tune(jobs, prompts, tmp / "tune")
    loads = f", a {load_s:g} s model load per backend" if load_s else ""
    print(f"{len(jobs)} jobs on {GPUS} declared GPUs{loads}; sum of durations {sum(durs):.1f} s, "
          f"ideal makespan {ideal:.2f} s (longest-first packing {lpt:.2f} s)")
    for side, s in took.items():
        print(f"  {side:<10} {s:7.2f} s  = {s / ideal:.2f} x ideal")
    out = figures(took, ideal, len(jobs), load_s)
    if per_job:
        print(f"{zero_jobs} zero-length jobs: llem {per_job[0] * 1e3:.1f} ms/job (actor starts "
              f"included) vs in-process loop {per_job[1] * 1e3:.1f} ms/job")
        out.append(Figure("2 overhead", "per job, llem on Ray / in-process loop",
                          per_job[0] * 1e3, per_job[1] * 1e3, "ms/job", "llem", "in-process",
                          "value <= 20", f"{zero_jobs} zero-length jobs"))
    return out


def figures(took: dict[str, float], ideal: float, n: int,
            load_s: float = 0.0) -> list[Figure]:
    out = []
    note = f"{n} jobs, {GPUS} GPUs" + (f", {load_s:g} s model load" if load_s else "")
    if "llem" in took:
        out.append(Figure("1 makespan", "llem / ideal", took["llem"], ideal, "s", "llem",
                          "ideal", "<= 1.05", note))
    if "llem" in took and "sequential" in took:
        out.append(Figure("1 makespan", "llem / one after another", took["llem"],
                          took["sequential"], "s", "llem", "sequential", None, note))
    if "llem" in took and "tune" in took:
        out.append(Figure("1 makespan", "llem / Ray Tune", took["llem"], took["tune"], "s",
                          "llem", "Tune", "< 1", note))
    if "tune" in took:
        out.append(Figure("1 makespan", "Ray Tune / ideal", took["tune"], ideal, "s", "Tune",
                          "ideal", None, note))
    return out


def main() -> list[Figure]:
    """The null grid by all three (`make bench`)."""
    return run()


if __name__ == "__main__":
    kw = dict(a.split("=", 1) for a in sys.argv[1:])
    if "load_s" in kw:  # one after another would take 0.5 s per job longer: nothing new
        run(sides=("llem", "tune"), zero_jobs=0, load_s=float(kw["load_s"]))
    else:
        main()
