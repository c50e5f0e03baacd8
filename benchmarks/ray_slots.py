"""The real driver on a real multi-node Ray: 4 nodes x 8 declared GPUs (32 slots), noop jobs.

A `ray.cluster_utils.Cluster` (a head without GPUs, 4 worker nodes of 8 declared GPUs each)
runs the same campaign shape at 4, 16 and 32 slots side by side: one load group per slot
of jobs_per_slot jobs of job_s each (noop request_s), so every slot is busy from its first
job to its last and nothing is split. A custom resource per width (lane4: 1, lane16: 4,
lane32: 8 on each node) caps how many slots a campaign may use on the same cluster. Per
width it prints the scheduling overhead per job (GPU time between jobs and after a slot's
last job, from the stored rows: benchmarks.idle), the gap between two jobs on one worker
(the round trip), the driver process's CPU time per job and the worker start per slot.
Flat across widths is the goal for the driver's CPU per job and the gap: the driver's
per-job work must not grow with the slots it feeds. The workers start one after another
(Ray creates the actors; 1-3 s each here), so at 32 slots the first slots finish long
before the last; the tails that makes are in the scheduling overhead, not in the gap.
Jobs last 2 s: 32 slots of shorter jobs would ask more of this machine's 2 cores (the
workers' harness, the driver) than they have, and the figure would measure the CPU queue,
not the driver.

Then a node is removed after its first result in a 32-slot campaign: every job is stored
exactly once (its jobs go back to their groups and run on the other 3 nodes).

    python -m benchmarks.ray_slots                  # 4/16/32 slots x 4 jobs of 2 s + loss (~3 min)
    from benchmarks.ray_slots import run; run(widths=(4, 8), jobs_per_slot=2)   # -> dict
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
               "health_check_initial_delay_ms": 0}


def grid_text(name: str, slots: int, jobs_per_slot: int, job_s: float, lane: str) -> str:
    """slots load groups (models) of jobs_per_slot jobs (seeds) each, on lane resources."""
    return f"""
name: {name}
models: [{", ".join(f"m{i}" for i in range(slots))}]
backends: [noop]
noop: {{request_s: {job_s}}}
grid: {{temperature: 0.5, max_new_tokens: 2,
       seed: [{", ".join(str(i) for i in range(jobs_per_slot))}]}}
dataset: {{num_prompts: 1}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
resources: {{gpus_per_job: 1, custom: {{{lane}: 1}}}}
"""


@contextmanager
def cluster(nodes: int = 4, gpus: int = 8, widths: tuple[int, ...] = (4, 16, 32)
            ) -> Iterator[tuple[Any, list[Any]]]:
    """A local multi-node Ray: lane<w> resources give each width w its share per node."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "_system_config": FAST_HEALTH})
    added = [c.add_node(num_cpus=1, num_gpus=gpus,
                        resources={f"lane{w}": max(1, w // nodes) for w in widths})
             for _ in range(nodes)]
    ray.init(address=c.address, namespace="llem", logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    try:
        yield c, added
    finally:
        ray.shutdown()
        c.shutdown()


def campaign(slots: int, jobs_per_slot: int, job_s: float, lane: str,
             on_result: Any = None) -> dict[str, Any]:
    """Run one campaign on the connected Ray; its figures (benchmarks.idle breakdown)."""
    from benchmarks.common import settle
    from benchmarks.idle import from_store
    from llem import run_campaign
    from llem.config.load import load_text
    from llem.store.query import run_sql
    from llem.store.store import Store

    name = f"slots{slots}-{lane}"
    loaded = load_text(grid_text(name, slots, jobs_per_slot, job_s, lane))
    root = Path(tempfile.mkdtemp(prefix="llem-bench-slots-"))
    store = Store(root)
    n = slots * jobs_per_slot
    settle()
    wall0, t0, cpu0 = time.time(), time.perf_counter(), time.process_time()
    s = run_campaign(loaded, store=store, on_result=on_result)
    makespan, wall1 = time.perf_counter() - t0, time.time()
    cpu = time.process_time() - cpu0  # the driver process: its loop, writer, Ray's threads
    rows = run_sql(store, "SELECT job_id, cycle, node_id FROM runs").to_pylist()
    idle = from_store(store, name, wall0, wall1, slots, n * job_s)
    shutil.rmtree(root, ignore_errors=True)
    return {"slots": slots, "jobs": n, "ok": s.ok, "failed": s.failed, "workers": s.workers,
            "rescheduled": s.rescheduled, "makespan_s": makespan,
            "ideal_s": jobs_per_slot * job_s, "rows": len(rows),
            "distinct": len({(r["job_id"], r["cycle"]) for r in rows}),
            "nodes": {r["node_id"] for r in rows}, "idle": idle,
            "between_ms": idle.between_jobs_s / max(1, idle.job_switches) * 1e3,
            "scheduling_ms": idle.scheduling_s / n * 1e3,
            "startup_s": idle.startup_s / max(1, idle.slots), "cpu_ms": cpu / n * 1e3}


def run(widths: tuple[int, ...] = (4, 16, 32), jobs_per_slot: int = 4, job_s: float = 2.0,
        nodes: int = 4, gpus: int = 8, lose: bool = True) -> dict[str, Any]:
    """Each width's campaign, then (lose) a campaign on every slot that loses a node."""
    out: dict[str, Any] = {"widths": {}, "job_s": job_s}
    with cluster(nodes, gpus, widths) as (c, added):
        for w in widths:
            r = out["widths"][w] = campaign(w, jobs_per_slot, job_s, f"lane{w}")
            print(f"  {w:>3} slots: {r['jobs']} jobs of {job_s:g} s, makespan "
                  f"{r['makespan_s']:.2f} s (ideal {r['ideal_s']:.1f} s); driver CPU "
                  f"{r['cpu_ms']:.1f} ms/job; scheduling "
                  f"overhead {r['scheduling_ms']:.1f} ms/job, between jobs "
                  f"{r['between_ms']:.1f} ms, worker start {r['startup_s']:.2f} s per slot",
                  flush=True)
        if lose:
            w, victim, gone = max(widths), added[-1], threading.Event()

            def on_result(row: Any, _: Any) -> None:
                if row.node_id == victim.node_id and not gone.is_set():
                    gone.set()
                    threading.Thread(target=c.remove_node, args=(victim,),
                                     daemon=True).start()

            r = out["lost"] = campaign(w, jobs_per_slot, job_s, f"lane{w}", on_result)
            r["removed"] = gone.is_set()
            r["victim"] = victim.node_id
            print(f"  {w:>3} slots, a node removed after its first result: {r['ok']} ok, "
                  f"{r['failed']} failed of {r['jobs']}; {r['rows']} rows, {r['distinct']} "
                  f"distinct jobs; {r['rescheduled']} rescheduled; makespan "
                  f"{r['makespan_s']:.2f} s", flush=True)
    return out


def figures(r: dict[str, Any]) -> list[Figure]:
    ws = sorted(r["widths"])
    lo = r["widths"][ws[0]]
    out = []
    for w in ws[1:]:
        x = r["widths"][w]
        out.append(Figure("scale", f"Ray, driver CPU per job, {w} / {ws[0]} slots",
                          x["cpu_ms"], lo["cpu_ms"], "ms/job", f"{w} slots", f"{ws[0]} slots",
                          "<= 1.5" if w == ws[-1] else None,
                          f"{x['jobs']} noop jobs of {r['job_s']:g} s"))
        out.append(Figure("scale", f"Ray, gap between jobs on a worker, {w} / {ws[0]} slots",
                          x["between_ms"], lo["between_ms"], "ms", f"{w} slots",
                          f"{ws[0]} slots", None,
                          f"scheduling overhead incl. tails {x['scheduling_ms']:.0f} vs "
                          f"{lo['scheduling_ms']:.0f} ms/job; worker start "
                          f"{x['startup_s']:.2f} vs {lo['startup_s']:.2f} s per slot"))
    if "lost" in r:
        x = r["lost"]
        out.append(Figure("scale", f"Ray, a node lost: distinct jobs stored / jobs ({ws[-1]} "
                          "slots)", x["distinct"], x["jobs"], "jobs", "stored", "jobs",
                          None,
                          f"{x['rows']} rows, {x['rescheduled']} rescheduled, "
                          f"{x['failed']} failed"))
    return out


def main() -> list[Figure]:
    return figures(run())


if __name__ == "__main__":
    main()
