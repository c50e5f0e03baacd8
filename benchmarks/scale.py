"""The scheduling core at 8 to 10,000 GPUs on a simulated cluster and clock (no Ray, no sleep).

The decisions are llem.scheduler.core's, the ones the Ray driver takes; llem.scheduler.sim
carries them out: 3/4 of the GPUs on 8 x H100 nodes, the rest on 4 x A100 nodes, skewed
load groups (Pareto sizes), model loads of 10-120 s, jobs of 15-300 s of 1-8 GPUs, some tied
to a GPU type. Per size it prints

    makespan / bound      bound = max(GPU work / GPUs (jobs + the model loads any run must pay,
                          per GPU type too), longest job after its load; proof in
                          llem.scheduler.sim.Workload.bound)                  goal <= 1.03 at 1,024
                          (and against the plain bound, one model load per group)
    model loads / load groups
    driver CPU per job and per event (CPU time inside the core's decisions)  goal at 1,024 <=
                          1.5 x that at 8; p99 per event < 5 ms at 10,000

and a run of 1,024 GPUs that loses 4 nodes at random times (each back 600 s later).

Beside them: the share of GPU time in neither a job nor a model load (idle, the tail) and
the GPU time of model loads beyond one per group (splits), which are what the makespan
loses against the bound.

    python -m benchmarks.scale              # 8, 64, 1,024 and 10,000 GPUs (~20 s)
    python -m benchmarks.scale 8 64         # some sizes
    python -m benchmarks.scale --seed 2 64  # another workload (seed 1 by default)
"""

from __future__ import annotations

import sys

from benchmarks.figures import Figure
from llem.scheduler.sim import SimResult, simulate, workload

SEED = 1


def run(gpus: int, losses: int = 0, seed: int | None = None) -> SimResult:
    seed = SEED if seed is None else seed
    return simulate(workload(gpus, seed=seed), losses=losses, crash_p=0.002, seed=seed)


def losses(r: SimResult) -> str:
    """Where the makespan went beyond the bound, as shares of makespan x GPUs."""
    area = r.makespan_s * r.gpus
    return (f"idle {r.idle_share:.1%}, model loads {r.load_gpu_s / area:.1%} of GPU time "
            f"({r.loads} loads for {r.groups} groups)")


def figures(r: SimResult, base: SimResult | None, tag: str = "") -> list[Figure]:
    size = f"{r.gpus} GPUs, {r.jobs} jobs, {r.groups} groups{tag}"
    per_job = r.core_cpu_s / r.jobs * 1e3
    out = [
        Figure("scale", f"makespan / bound ({size})", r.makespan_s, r.bound_s, "s",
               "sim", "bound", "<= 1.03" if r.gpus == 1024 and not tag else None,
               f"work/GPUs {r.spread_s:.0f} s, longest job {r.chain_s:.0f} s; plain bound "
               f"{r.plain_bound_s:.0f} s ({r.makespan_s / r.plain_bound_s:.3f}); {losses(r)}"),
        Figure("scale", f"model loads / load groups ({size})", r.loads, r.groups, "loads",
               "loads", "groups"),
        Figure("scale", f"driver CPU per event, p99 / mean ({size})",
               r.event_cpu_p99_s * 1e3, r.core_cpu_s / max(1, r.events) * 1e3, "ms",
               "p99", "mean", "value < 5" if r.gpus >= 10_000 else None,
               f"{r.events} events, max {r.event_cpu_max_s * 1e3:.2f} ms"),
    ]
    if base is not None and not tag:
        out.append(Figure("scale", f"driver CPU per job, {r.gpus} / {base.gpus} GPUs",
                          per_job, base.core_cpu_s / base.jobs * 1e3, "ms/job",
                          f"{r.gpus}", f"{base.gpus}",
                          "<= 1.5" if r.gpus == 1024 else None))
    return out


def main(sizes: tuple[int, ...] = (8, 64, 1024, 10_000), lossy: int = 1024) -> list[Figure]:
    out: list[Figure] = []
    base = None
    for gpus in sizes:
        r = run(gpus)
        base = base or r
        print(f"  {gpus:>6} GPUs: {r.jobs} jobs, {r.groups} groups: makespan "
              f"{r.makespan_s:.0f} s / bound {r.bound_s:.0f} s = "
              f"{r.makespan_s / r.bound_s:.3f} (plain bound {r.plain_bound_s:.0f} s: "
              f"{r.makespan_s / r.plain_bound_s:.3f}); loads {r.loads} / {r.groups} groups; CPU "
              f"{r.core_cpu_s / r.jobs * 1e6:.0f} us/job, {r.core_cpu_s / r.events * 1e6:.0f}"
              f" us/event (p99 {r.event_cpu_p99_s * 1e6:.0f} us, max "
              f"{r.event_cpu_max_s * 1e6:.0f} us)\n{' ' * 14}{losses(r)}", flush=True)
        out += figures(r, base)
    lost = run(lossy, losses=4)
    print(f"  {lossy} GPUs, 4 nodes lost: makespan / bound {lost.makespan_s / lost.bound_s:.3f}"
          f", {lost.rescheduled} jobs rescheduled, {lost.failed} failed", flush=True)
    out += figures(lost, None, ", 4 nodes lost")
    return out


if __name__ == "__main__":
    from rich.console import Console

    from benchmarks.figures import render

    args = sys.argv[1:]
    if args[:1] == ["--seed"]:
        SEED, args = int(args[1]), args[2:]
    elif args[:1] in (["--help"], ["-h"]):
        sys.exit(__doc__)
    sizes = tuple(int(a) for a in args) or (8, 64, 1024, 10_000)
    Console(width=150).print(render(main(sizes, min(1024, max(sizes))), "scale"))
