"""GPU proof of packing (issue 4): a transformers campaign through llem's real Driver on a
2-GPU machine, both GPUs measured at once, then one job that takes both GPUs.

Three campaigns on a ~0.8B random-weight Llama built offline (llem:random-0.8b):
  parallel   2 load groups (bfloat16, float16) x 2 batch sizes, one GPU each: both GPUs
             run measured jobs at the same time (neighbour columns name each other);
  alone      1 group on one GPU while the other GPU idles: the busy job's energy must be
             its own GPU's only (the idle GPU's counter must not leak into it);
  both       gpus_per_job 2 (device_map auto across both GPUs): one job, both counters.
A monitor thread in this (driver) process reads every GPU's NVML energy counter every 0.1 s,
independently of llem; for each job it prints the job's own per-GPU energy (from the row)
beside the monitor's energy of every GPU over the job's [started_at, finished_at] span.

    python -m benchmarks.gpu_two              # the 2-GPU run (about 5 minutes)
    python -m benchmarks.gpu_two --cpu        # smoke test: 2 declared GPUs, tiny model, CPU

Writes $OUT/gpu_two.json (OUT defaults to ./out). Needs torch, transformers, pyarrow,
nvidia-ml-py, ray, pydantic, pyyaml, rich, click; not duckdb.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log

sys.modules.setdefault("duckdb", None)  # type: ignore[arg-type]  # absent on the GPU machine


class Monitor:
    """Every GPU's energy counter, read every period_s in a thread: (time, {uuid: mJ})."""

    def __init__(self, period_s: float = 0.1) -> None:
        from llem.measure.gpu import Gpu, nvml, nvml_unavailable_reason

        self.gpus: list[Any] = []
        self.reason = nvml_unavailable_reason()
        if self.reason is None:
            n = nvml()
            for i in range(n.nvmlDeviceGetCount()):
                h = n.nvmlDeviceGetHandleByIndex(i)
                uuid, name = n.nvmlDeviceGetUUID(h), n.nvmlDeviceGetName(h)
                self.gpus.append(Gpu(uuid if isinstance(uuid, str) else uuid.decode(), i,
                                     name if isinstance(name, str) else name.decode(), h))
        self.period_s = period_s
        self.readings: list[tuple[float, dict[str, int | None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.readings.append((time.time(), {g.uuid: g.energy_mj() for g in self.gpus}))
            self._stop.wait(self.period_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def energy_j(self, start: float, end: float) -> dict[str, float | None]:
        """Each GPU's counter difference between the readings closest inside [start, end]."""
        inside = [r for r in self.readings if start <= r[0] <= end]
        if len(inside) < 2:
            return {g.uuid: None for g in self.gpus}
        a, b = inside[0][1], inside[-1][1]
        return {u: (b[u] - a[u]) / 1e3 if a.get(u) is not None and b.get(u) is not None
                else None for u in a}


GRID = """
name: {name}
models: [{model}]
backends: [transformers]
grid:
  dtype: {dtypes}
  batch_size: {batches}
  max_new_tokens: {tokens}
  output_policy: fixed
dataset: {{num_prompts: {prompts}}}
measurement: {{warmup_requests: {warm}, min_window_s: {window}, thermal_gaps: false,
               idle_baseline_s: {idle}}}
resources: {{gpus_per_job: {gpus}}}
{engine}
"""


def campaign(name: str, model: str, args: argparse.Namespace, dtypes: list[str],
             batches: list[int], gpus: int) -> str:
    return GRID.format(name=name, model=model, dtypes=json.dumps(dtypes),
                       batches=json.dumps(batches), tokens=args.tokens, prompts=args.prompts,
                       warm=args.prompts, window=args.window, idle=2.0 if not args.cpu else 0,
                       gpus=gpus, engine="transformers: {device_map: cpu}" if args.cpu else "")


def run_campaign(text: str, store: Any, monitor: Monitor) -> list[dict[str, Any]]:
    """Driver.run, then each job's row with the monitor's energy of every GPU in its span."""
    from llem import run_campaign
    from llem.config.load import load_text

    rows: list[dict[str, Any]] = []
    summary = run_campaign(load_text(text), store=store,
                           on_result=lambda r, s: rows.append(r.row()))
    if summary.failed:
        raise RuntimeError(f"jobs failed: {summary.errors[:3]}")
    out = []
    for r in rows:
        span = monitor.energy_j(r["started_at"], r["finished_at"])
        own = list(r.get("gpu_uuids") or [])
        out.append({
            "campaign": r["campaign"], "dtype": r["dtype"], "batch_size": r["batch_size"],
            "gpus_per_job": r["gpus_per_job"], "visible_devices": r["visible_devices"],
            "gpu_uuids": own, "node_id": r["node_id"], "worker_pid": r["worker_pid"],
            "started_at": r["started_at"], "finished_at": r["finished_at"],
            "duration_s": r["duration_s"], "tokens_per_s": r["tokens_per_s"],
            "energy_j": r["energy_j"], "gpu_energy_j_per_gpu": r.get("gpu_energy_j_per_gpu"),
            "idle_power_w": r.get("idle_power_w"), "neighbor_jobs": r.get("neighbor_jobs"),
            "neighbor_gpus": r.get("neighbor_gpus"), "model_loads": r["model_loads"],
            "monitor_span_j": span,
            "monitor_own_j": _sum(span, own), "monitor_other_j": _sum(
                span, [u for u in span if u not in own]),
        })
    return out


def _sum(span: dict[str, float | None], uuids: list[str]) -> float | None:
    vals = [span.get(u) for u in uuids]
    return float(sum(v for v in vals if v is not None)) if vals and None not in vals else None


def _f(v: float | None, unit: str = "J") -> str:
    return f"{v:9.1f} {unit}" if v is not None else "      n/a"


def show(title: str, rows: list[dict[str, Any]]) -> None:
    log(title)
    for r in rows:
        per = r["gpu_energy_j_per_gpu"] or []
        log(f"  {r['dtype']:<9} bs {r['batch_size']:>3} gpus {r['visible_devices']!s:<4} "
            f"{r['duration_s']:6.2f} s {r['tokens_per_s']:8.1f} tok/s | job energy "
            f"{_f(r['energy_j'])} per GPU {[round(x, 1) for x in per if x is not None]} | "
            f"monitor over the job's span: own {_f(r['monitor_own_j'])}, other GPU(s) "
            f"{_f(r['monitor_other_j'])} | neighbours {r['neighbor_jobs']}")


def overlap(rows: list[dict[str, Any]]) -> float:
    """Seconds during which jobs on different GPU sets ran at the same time."""
    total = 0.0
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a["visible_devices"] != b["visible_devices"]:
                total += max(0.0, min(a["finished_at"], b["finished_at"])
                             - max(a["started_at"], b["started_at"]))
    return total


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="no GPU: 2 declared GPUs, tiny model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--window", type=float, default=8.0, help="min_window_s of each job")
    args = ap.parse_args(argv)
    if args.cpu:
        args.tokens, args.prompts, args.window = 4, 4, 0.0
    out_dir = Path(os.environ.get("OUT", "out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LLEM_CACHE", str(Path(tempfile.gettempdir()) / "llem-gpu-two"))

    root = str(Path(__file__).resolve().parent.parent)  # Ray's workers import llem from here
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                                               if p)
    from llem.models.builtin import resolve_model
    from llem.scheduler.cluster import connect
    from llem.store.store import Store

    model = resolve_model("llem:tiny" if args.cpu else "llem:random-0.8b")  # built once here
    log(f"model {model}")
    where = connect(None, num_gpus=2 if args.cpu else None)
    import ray

    res = ray.cluster_resources()
    log(f"Ray {where}: {res.get('GPU', 0):g} GPUs, {res.get('CPU', 0):g} CPUs")
    if res.get("GPU", 0) < 2:
        raise SystemExit("needs 2 GPUs (or --cpu)")
    monitor = Monitor()
    log(f"monitor: {[g.name for g in monitor.gpus]} ({monitor.reason or 'NVML ok'})")
    monitor.start()
    store = Store(Path(tempfile.mkdtemp(prefix="llem-gpu-two-")) / "store")
    figs: dict[str, Any] = {"gpus": [{"uuid": g.uuid, "index": g.index, "name": g.name}
                                     for g in monitor.gpus], "energy_unavailable": monitor.reason}
    try:
        par = run_campaign(campaign("two-parallel", model, args, ["bfloat16", "float16"]
                                    if not args.cpu else ["float32", "bfloat16"], [8, 32], 1),
                           store, monitor)
        show("parallel: 2 groups, one GPU each, measured at the same time", par)
        figs["parallel"] = {"jobs": par, "overlap_s": overlap(par),
                            "gpu_sets": sorted({str(r["visible_devices"]) for r in par})}
        log(f"  jobs on different GPUs overlapped {figs['parallel']['overlap_s']:.1f} s")
        time.sleep(0 if args.cpu else 5)
        alone = run_campaign(campaign("two-alone", model, args, ["bfloat16"] if not args.cpu
                                      else ["float32"], [32], 1), store, monitor)
        show("alone: one busy GPU, the other idle", alone)
        figs["alone"] = {"jobs": alone}
        time.sleep(0 if args.cpu else 5)
        both = run_campaign(campaign("two-both", model, args, ["bfloat16"] if not args.cpu
                                     else ["float32"], [32], 2), store, monitor)
        show("both: gpus_per_job 2 (device_map auto across both GPUs)", both)
        figs["both"] = {"jobs": both}
    finally:
        monitor.stop()
        ray.shutdown()
    for r in figs["alone"]["jobs"]:  # the leak check, in numbers
        if r["energy_j"] is not None and r["monitor_own_j"]:
            r["energy_over_monitor_own"] = r["energy_j"] / r["monitor_own_j"]
            log(f"alone: job energy / monitor own-GPU energy over its span = "
                f"{r['energy_over_monitor_own']:.3f} (< 1: the window is inside the span); "
                f"idle GPU over the same span {_f(r['monitor_other_j'])}, not in the job")
    path = out_dir / "gpu_two.json"
    path.write_text(json.dumps(figs, indent=2, default=str))
    log(f"wrote {path}")
    return figs


if __name__ == "__main__":
    main()
