"""Thermal gaps on a real GPU: back-to-back transformers jobs through the real driver.

A random-weight Llama (hidden 2048, 16 layers, ~0.8B parameters, built offline: llem's
`llem:random-0.8b`) in bf16 decodes batch 32 x 256 tokens for at least --min-window-s per
job, so each job heats the GPU. One worker (one model load) runs --jobs jobs with thermal
gaps off, then --jobs jobs with gaps on (order sequential): the first block shows the heat a
job inherits from the one before; in the second, before each job the worker waits (at most
--gap-max-s) until the GPU is back near the idle state it saw at start. Prints per job: gaps
on/off, gap seconds, whether idle was reached, start temperature and power, the idle target,
the job's duration and energy; writes them as JSON to $OUT/gpu_gaps.json.

    PYTHONPATH=$PWD python -m benchmarks.gpu_gaps         # GPU machine, about 3 minutes
    PYTHONPATH=$PWD python -m benchmarks.gpu_gaps --cpu   # smoke test: tiny model, CPU
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

COLUMNS = ("cycle", "status", "gap_s", "gap_reached", "start_temperature_c", "start_power_w",
           "gap_target_temperature_c", "gap_target_power_w", "duration_s", "energy_j",
           "avg_power_w", "tokens_per_s", "output_tokens")


def campaign(args: argparse.Namespace) -> dict[str, Any]:
    gpu = not args.cpu
    return {
        "name": "gpu-gaps", "models": ["llem:random-0.8b" if gpu else "llem:tiny"],
        "backends": ["transformers"], "cycles": args.jobs, "order": "sequential",
        "grid": {"dtype": "bfloat16" if gpu else "float32", "batch_size": 32 if gpu else 4,
                 "max_new_tokens": 256 if gpu else 8, "output_policy": "fixed",
                 "max_input_tokens": 128,
                 # gaps off first, then on: one load group, so one worker runs them all
                 "measurement.thermal_gaps": [m == "on" for m in args.modes.split(",")]},
        "dataset": {"source": "builtin", "num_prompts": 32 if gpu else 8},
        "measurement": {"warmup_requests": 32 if gpu else 0,
                        "min_window_s": args.min_window_s if gpu else 0.0,
                        "gap_max_s": args.gap_max_s,
                        "gap_temp_margin_c": args.temp_margin_c, "gap_poll_s": 0.5},
        "resources": {"gpus_per_job": 1 if gpu else 0},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="smoke test on the CPU (tiny model)")
    ap.add_argument("--jobs", type=int, default=2, help="back-to-back jobs per mode (cycles)")
    ap.add_argument("--modes", default="off,on", help="thermal gaps off and/or on, in order")
    ap.add_argument("--min-window-s", type=float, default=12.0, help="work per job")
    ap.add_argument("--gap-max-s", type=float, default=20.0, help="longest gap")
    ap.add_argument("--temp-margin-c", type=float, default=3.0)
    args = ap.parse_args()
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="llem-gpu-gaps-"))
    os.environ.setdefault("LLEM_CACHE", str(tmp / "cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from llem import run_campaign
    from llem.config.environments import EnvChoice
    from llem.config.load import from_data
    from llem.config.yaml_source import SourceMap
    from llem.envs.environments import runtime_env
    from llem.measure.gpu import local_gpus, system_info
    from llem.models.builtin import resolve_model
    from llem.scheduler.cluster import connect
    from llem.store.store import Store

    data = campaign(args)
    t0 = time.perf_counter()
    resolve_model(data["models"][0])  # built once here, before Ray, so no job waits on it
    build_s = time.perf_counter() - t0
    loaded = from_data(data, SourceMap("gpu_gaps.py"), base_dir=tmp)
    rows: list[dict[str, Any]] = []

    def on_result(row: Any, s: Any) -> None:  # row: the job's RunRow
        gaps = json.loads(row.point_json)["measurement"]["thermal_gaps"]
        rows.append({**{k: getattr(row, k) for k in COLUMNS}, "thermal_gaps": gaps})
        r = rows[-1]
        print(f"job {len(rows)} (gaps {'on' if gaps else 'off'}, c{r['cycle']}) {r['status']}: "
              f"gap {_f(r['gap_s'])} s (reached "
              f"{r['gap_reached']}), start {_f(r['start_temperature_c'])} C / "
              f"{_f(r['start_power_w'])} W, target <= {_f(r['gap_target_temperature_c'])} C / "
              f"{_f(r['gap_target_power_w'])} W; ran {_f(r['duration_s'])} s, "
              f"{_f(r['energy_j'])} J, {_f(r['avg_power_w'])} W avg, "
              f"{_f(r['tokens_per_s'])} tok/s", flush=True)

    where = connect(None, num_gpus=None if not args.cpu else 0)
    print(f"model built in {build_s:.1f} s; Ray {where}; {args.jobs} jobs back to back per "
          f"mode ({args.modes})", flush=True)
    # The driver's own Python runs the worker (kind current); its package check is skipped
    # so a machine without accelerate (not needed for one GPU) still runs the proof.
    envs = {"transformers": runtime_env("transformers", EnvChoice())}
    summary = run_campaign(loaded, store=Store(str(tmp / "store")), on_result=on_result,
                           runtime_envs=envs)
    gpus, reason = local_gpus()
    report = {"device": [g.get("name") for g in gpus] or reason, "system": system_info(),
              "settings": data, "model_build_s": build_s, "elapsed_s": summary.elapsed_s,
              "ok": summary.ok, "failed": summary.failed, "errors": summary.errors[:3],
              "jobs": rows, "summary": {}}
    for mode in (False, True):  # jobs after the very first: each follows a hot job
        after = [r for r in rows[1:] if r["thermal_gaps"] is mode]
        temps = [r["start_temperature_c"] for r in after if r["start_temperature_c"] is not None]
        gaps = [r["gap_s"] for r in after if r["gap_s"] is not None]
        report["summary"]["on" if mode else "off"] = {
            "jobs": len(after),
            "mean_start_temperature_c": sum(temps) / len(temps) if temps else None,
            "mean_gap_s": sum(gaps) / len(gaps) if gaps else None,
            "reached": sum(1 for r in after if r["gap_reached"])}
    (out / "gpu_gaps.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    for mode, v in report["summary"].items():
        print(f"gaps {mode}: {v['jobs']} jobs after a hot one, mean start temperature "
              f"{_f(v['mean_start_temperature_c'])} C, mean gap {_f(v['mean_gap_s'])} s, idle "
              f"reached {v['reached']}")
    print(f"{summary.ok} ok, {summary.failed} failed in {summary.elapsed_s:.1f} s; wrote "
          f"{out / 'gpu_gaps.json'}")
    if summary.failed:
        raise SystemExit(1)


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
