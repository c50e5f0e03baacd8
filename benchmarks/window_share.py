"""Window share: time inside energy windows / the campaign's GPU time, before (idle baseline
per job, full warmup per job) and after (cached baseline, warmup shared within the load
group), on the same 12-point grid, with J/token mean and CV side by side.

A campaign pays for every second its GPUs are held, but only the windows measure anything:
the thermal gap, the idle baseline and the warmup are overhead. "after" keeps J/token where
it was (the same window, the same convergence before it) while spending less outside it.

    python -m benchmarks window_share             # CPU: noop backend, a simulated GPU
    python -m benchmarks.window_share --gpu       # the GPU run: one H100 (~25 min)
    python -m benchmarks.window_share --gpu --model llem:random-0.8b --cycles 3
    python -m benchmarks.window_share --gpu --side before --cycles 2   # one device call each
    python -m benchmarks.window_share --combine DIR     # the two sides' JSON side by side

The CPU run scales the H100's times by 1/15 (idle 5 -> 0.33 s, window 10 -> 0.67 s, the 1 s
idle check -> 0.067 s, the counter's 100 ms period -> 6.7 ms) and runs the jobs inline (one
worker, no Ray); its simulated GPU draws 300 W while the backend generates and 100 W
otherwise (the only stand-in). The GPU run is two llem campaigns through Ray on the real
transformers backend with llem's default times; its figures come from the stored rows.
Goal: window share >= 0.75 after, with the same J/token (each point's means within their
95% CIs of each other).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

GRID = """
name: bench-window-{side}
cycles: {cycles}
models: [{model}]
backends: [{backend}]
grid:
  dtype: {dtype}
  batch_size: {batch_sizes}
  max_new_tokens: {tokens}
{engine}dataset: {{num_prompts: {prompts}}}
measurement: {{{measurement}}}
resources: {{gpus_per_job: {gpus}}}
"""
BEFORE = "idle_baseline: per_job, warmup_share: false"
AFTER = "idle_baseline: cached, warmup_share: true"
# the H100's times scaled by 1/15 for the CPU run (llem's defaults on the GPU)
SCALE = 1 / 15
CPU_TIMES = (f"thermal_gaps: false, idle_baseline_s: {5 * SCALE:.4f}, "
             f"min_window_s: {10 * SCALE:.4f}, idle_check_s: {1 * SCALE:.4f}")


class BusyGpu:
    """A simulated GPU: 300 W while the backend generates, 100 W otherwise; its energy
    counter integrates that exactly and updates every `period_s`, as NVML's does."""

    def __init__(self, clock: Any, period_s: float = 0.1 * SCALE) -> None:
        self.clock, self.period_s = clock, period_s
        self.uuid, self.index, self.name = "GPU-sim-0", 0, "simulated"
        self.watts, self._e, self._t, self.origin = 100.0, 0.0, clock(), clock()

    def set(self, watts: float) -> None:
        now = self.clock()
        self._e += self.watts * (now - self._t)
        self._t, self.watts = now, watts

    def energy_mj(self) -> int:
        now = self.clock()
        e = self._e + self.watts * (now - self._t)
        updated = self.origin + int((now - self.origin) / self.period_s) * self.period_s
        return int((e - self.watts * max(0.0, now - max(updated, self._t))) * 1000)

    def sample(self) -> dict[str, Any]:
        return {"power_w": self.watts, "power_source": "instant", "clocks_event_reasons": [],
                "temperature_c": 40.0, "sm_clock_mhz": 1980.0, "gpu_util_pct": 0.0,
                "mem_used_mib": 1.0}

    def info(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "index": 0, "name": self.name, "power_limit_w": 700.0,
                "mig_mode": False, "memory_total_mib": 1.0}


def figures_of(rows: list[dict[str, Any]], gpu_s: float) -> dict[str, Any]:
    """Window share and J/token per point (mean, CV, 95% CI over cycles) from runs rows."""
    from llem.measure.stats import cycle_stats

    inside = sum((r["duration_s"] or 0.0) + (r.get("prefill_window_s") or 0.0) for r in rows)
    by: dict[str, list[float | None]] = {}  # str keys: the figures travel as JSON
    for r in rows:
        by.setdefault(f"batch {r['batch_size']} x {r['max_new_tokens']} tokens", []).append(
            r["energy_per_token_j"])
    points = {k: cycle_stats(v) for k, v in sorted(by.items())}
    valid = [r.get("energy_valid") for r in rows]
    return {"window_s": inside, "gpu_s": gpu_s, "share": inside / gpu_s if gpu_s else 0.0,
            "points": points, "jobs": len(rows),
            "invalid": sum(1 for v in valid if v is False),
            "reasons": dict(Counter(x.split(":")[0] for r in rows
                                    for x in r.get("energy_invalid_reasons") or [])),
            "idle_measured": sum(1 for r in rows if r.get("idle_baseline_measured")),
            "warmup_requests": sum(r.get("warmup_requests") or 0 for r in rows)}


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """J/token side by side: the grand mean, the mean per-point CV, and how many points'
    means are within their 95% CIs of each other."""
    def grand(f: dict[str, Any], key: str) -> float:
        vals = [p[key] for p in f["points"].values() if p[key] is not None]
        return statistics.fmean(vals) if vals else float("nan")

    agree = 0
    for k, b in before["points"].items():
        a = after["points"][k]
        if b["mean"] is None or a["mean"] is None:
            continue
        agree += abs(a["mean"] - b["mean"]) <= (a["ci95"] or 0.0) + (b["ci95"] or 0.0)
    return {"jpt_before": grand(before, "mean"), "jpt_after": grand(after, "mean"),
            "cv_before": grand(before, "cv"), "cv_after": grand(after, "cv"),
            "points_agree": agree, "points": len(before["points"])}


def cpu_side(side: str, cycles: int) -> dict[str, Any]:
    """One campaign inline on one worker (a JobRunner, as a Ray worker runs it)."""
    from llem.backends.base import LoadSpec
    from llem.backends.noop import NoopBackend
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.harness.runner import JobRunner
    from llem.measure.meter import EnergyMeter

    loaded = load_text(GRID.format(
        side=side, cycles=cycles, model="sim", backend="noop", dtype="auto",
        batch_sizes="[1, 2, 4, 8]", tokens="[4, 8, 16]", engine="noop: {token_s: 0.002}\n",
        prompts=8, measurement=f"{BEFORE if side == 'before' else AFTER}, {CPU_TIMES}",
        gpus=0))
    jobs = list(iter_jobs(loaded))
    clock = time.perf_counter
    gpu = BusyGpu(clock)

    class Busy(NoopBackend):
        def generate(self, prompts: list[str], spec: Any) -> Any:
            gpu.set(300.0)
            try:
                return super().generate(prompts, spec)
            finally:
                gpu.set(100.0)

    p = jobs[0].point
    meter = EnergyMeter(1, gpus=[gpu], rapl_root=Path("/nonexistent"))  # type: ignore[list-item]
    meter.poll_s = 0.0005
    t0 = clock()
    runner = JobRunner("noop", {"model": p.model, "dtype": p.dtype, "engine": dict(p.engine),
                                "gpus": 0}, 1, meter=meter)
    runner.backend = Busy(LoadSpec(model=p.model, dtype=p.dtype, engine=dict(p.engine)))
    prompts = [f"prompt number {i} with a few words" for i in range(8)]
    rows = []
    for job in jobs:
        res = runner.run(job.payload(), prompts)
        assert res.run.status == "ok", res.run.error
        rows.append(res.run.row())
    return figures_of(rows, clock() - t0)


def gpu_side(side: str, cycles: int, model: str, store: Path, prompts: int = 128,
             batch_sizes: str = "[1, 8, 32, 128]") -> dict[str, Any]:
    """One llem campaign through Ray on the local GPU; GPU time per worker process is
    from its first job's start to its last job's end, the model loads included."""
    from llem import run_campaign
    from llem.config.load import load_text
    from llem.store.store import Store

    loaded = load_text(GRID.format(
        side=side, cycles=cycles, model=model, backend="transformers", dtype="bfloat16",
        batch_sizes=batch_sizes, tokens="[32, 64, 128]", engine="",
        prompts=prompts, measurement=BEFORE if side == "before" else AFTER, gpus=1))
    summary = run_campaign(loaded, store=Store(store))
    assert summary.failed == 0, summary.errors
    rows = [r for r in Store(store).read("runs").to_pylist()
            if r["campaign"] == f"bench-window-{side}"]
    spans: dict[Any, list[float]] = {}
    for r in rows:
        s = spans.setdefault(r["worker_pid"], [float("inf"), 0.0])
        start, end = r["started_at"].timestamp(), r["finished_at"].timestamp()
        s[0], s[1] = min(s[0], start), max(s[1], end)
    return figures_of(rows, sum(b - a for a, b in spans.values()))


def report(before: dict[str, Any], after: dict[str, Any], where: str) -> list[Figure]:
    c = compare(before, after)
    for name, f in (("before", before), ("after", after)):
        print(f"   {name:6}: window {f['window_s']:.1f} s of {f['gpu_s']:.1f} s GPU time = "
              f"share {f['share']:.3f}; {f['jobs']} jobs, idle measured {f['idle_measured']}x,"
              f" {f['warmup_requests']} warmup requests, {f['invalid']} rows invalid "
              f"{f['reasons'] or ''}")
    print(f"   J/token mean {c['jpt_before']:.4g} -> {c['jpt_after']:.4g}, mean CV "
          f"{c['cv_before']:.2%} -> {c['cv_after']:.2%}, points within their CIs "
          f"{c['points_agree']}/{c['points']}", flush=True)
    return [
        Figure(f"8 window share ({where})", "share after / before", after["share"],
               before["share"], "share", "after", "before", goal="value >= 0.75",
               note="window time / GPU time"),
        Figure(f"8 J/token ({where})", "mean after / before", c["jpt_after"], c["jpt_before"],
               "J/token", "after", "before", goal="<= 1.02",
               note=f"{c['points_agree']}/{c['points']} points within their 95% CIs"),
        Figure(f"8 J/token CV ({where})", "mean CV after / before", c["cv_after"],
               c["cv_before"], "CV", "after", "before"),
    ]


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="the GPU run (llem campaigns via Ray)")
    ap.add_argument("--model", default="llem:random-0.8b")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--prompts", type=int, default=128, help="--gpu: prompts per job")
    ap.add_argument("--batch-sizes", default="[1, 8, 32, 128]",
                    help="--gpu: the grid's 4 batch sizes (x 3 token counts: 12 points)")
    ap.add_argument("--side", choices=("before", "after", "both"), default="both",
                    help="--gpu: one side only (its figures to $OUT/window_share_SIDE.json), "
                         "so each side fits one device call")
    ap.add_argument("--combine", metavar="DIR",
                    help="report the two sides' JSON files written to DIR by --side runs")
    args = ap.parse_args(argv if argv is not None else [])
    if args.combine:
        d = Path(args.combine)
        sides = [json.loads((d / f"window_share_{s}.json").read_text())
                 for s in ("before", "after")]
        return report(sides[0], sides[1], f"GPU, {args.model}")
    if not args.gpu:
        before, after = cpu_side("before", args.cycles), cpu_side("after", args.cycles)
        return report(before, after, "CPU, simulated GPU")
    from benchmarks.common import local_ray

    shape = (args.prompts, args.batch_sizes)

    tmp = Path(tempfile.mkdtemp(prefix="llem-window-"))
    os.environ.setdefault("LLEM_CACHE", str(tmp / "cache"))
    with local_ray(num_gpus=1, num_cpus=os.cpu_count() or 2):
        if args.side != "both":
            one = gpu_side(args.side, args.cycles, args.model, tmp / "store", *shape)
            where = Path(os.environ.get("OUT") or ".") / f"window_share_{args.side}.json"
            where.write_text(json.dumps(one, indent=1, default=str))
            print(f"   {args.side}: window {one['window_s']:.1f} s of {one['gpu_s']:.1f} s GPU "
                  f"time = share {one['share']:.3f}; written to {where}", flush=True)
            return []
        before = gpu_side("before", args.cycles, args.model, tmp / "store", *shape)
        after = gpu_side("after", args.cycles, args.model, tmp / "store", *shape)
    figs = report(before, after, f"GPU, {args.model}")
    out = args.json or (Path(os.environ["OUT"]) / "window_share.json"
                        if os.environ.get("OUT") else None)
    if out:
        Path(out).write_text(json.dumps({"before": before, "after": after,
                                         "figures": [f.as_dict() for f in figs]},
                                        indent=1, default=str))
    return figs


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
