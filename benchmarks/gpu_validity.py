"""GPU proof of per-row validity and of `measurement.phases` (measurement issue), through
llem's real job runner (the code a Ray worker runs, called inline: the GPU machines have no
Ray) on llem:random-0.8b in bf16 on one GPU:

  1. validity: one job with a deliberately short window (min_window_s 0: one pass of a small
     batch, a few counter periods) must be flagged (energy_valid false, `short_window`);
     the same job with llem's default window (10 s on a GPU) must be valid;
  2. phases: jobs with `measurement.phases: true` at 64 and 128 output tokens. Inside one
     row prefill + decode equals the full window by construction, so the check is across
     rows: each row's prefill energy and decode J/token predict the other row's energy per
     pass (prefill + decode J/token x its tokens after the first); goal: within 3% of that
     row's measured full-window energy per pass.

Prints, and writes as JSON to $OUT/gpu_validity.json.

    OUT=$OUT python -m benchmarks.gpu_validity            # GPU machine, about 3 minutes
    python -m benchmarks.gpu_validity --cpu --tiny        # smoke test of the same code path
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log

sys.modules.setdefault("duckdb", None)  # type: ignore[arg-type]  # absent on the GPU machine

KEYS = ("max_new_tokens", "batch_size", "status", "error", "duration_s", "repeats",
        "energy_j", "energy_per_token_j", "energy_valid", "energy_invalid_reasons",
        "counter_period_s", "sample_coverage", "energy_counter_to_sampled", "throttle_s",
        "power_source", "input_tokens", "output_tokens", "num_requests", "prefill_energy_j",
        "prefill_energy_per_input_token_j", "decode_energy_per_token_j", "prefill_window_s",
        "prefill_repeats", "energy_unavailable")


def point(args: argparse.Namespace, tokens: int, batch: int, **measurement: Any) -> Any:
    from llem.config.models import Point

    return Point(backend="transformers", model=args.model, dtype=args.dtype,
                 batch_size=batch, max_new_tokens=tokens, output_policy="fixed",
                 dataset={"num_prompts": args.prompts},
                 measurement={"thermal_gaps": False, "idle_baseline": "per_job",
                              "idle_baseline_s": args.idle_s, **measurement},
                 resources={"gpus_per_job": 0 if args.cpu else 1})


def figures(run: Any) -> dict[str, Any]:
    return {k: getattr(run, k, None) for k in KEYS}


def per_pass(r: dict[str, Any]) -> float | None:
    """The full window's energy of one pass over the workload."""
    if r["energy_j"] is None or not r["repeats"]:
        return None
    return float(r["energy_j"]) / int(r["repeats"])


def predict(src: dict[str, Any], dst: dict[str, Any]) -> float | None:
    """dst's energy per pass from src's split: prefill of one pass + decode J/token x the
    tokens after each request's first in one pass of dst."""
    if src["prefill_energy_j"] is None or src["decode_energy_per_token_j"] is None \
            or not dst["repeats"]:
        return None
    decode_tokens = (dst["output_tokens"] - dst["num_requests"]) / dst["repeats"]
    return float(src["prefill_energy_j"]) + float(src["decode_energy_per_token_j"]) * decode_tokens


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="no GPU: smoke test on the CPU")
    ap.add_argument("--tiny", action="store_true", help="llem:tiny instead of random-0.8b")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--idle-s", type=float, default=2.0)
    args = ap.parse_args(argv)
    args.model = "llem:tiny" if args.tiny else "llem:random-0.8b"
    args.dtype = "float32" if args.cpu else "bfloat16"
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="llem-gpu-validity-"))
    out.mkdir(parents=True, exist_ok=True)

    from llem.config.job import Job, job_id_of, load_key_of
    from llem.harness.runner import JobRunner, load_of
    from llem.prompts.dataset import load_prompts

    short_window = 0.0
    normal = {} if not args.cpu else {"min_window_s": 2.0}  # CPU: no counter, no default
    cases = [
        ("short", point(args, 16, 8, min_window_s=short_window)),
        ("normal", point(args, 16, 8, **normal)),
        ("phases-64", point(args, 64, args.batch, phases=True, **normal)),
        ("phases-128", point(args, 128, args.batch, phases=True, **normal)),
    ]
    load = load_of(cases[0][1])
    runner = JobRunner("transformers", load, cases[0][1].resources.gpus_per_job)
    prompts = load_prompts(cases[0][1].dataset, Path.cwd())
    rows: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    try:
        for name, p in cases:
            job = Job("gpu-validity", p, 0, job_id_of(p), load_key_of(p))
            rows[name] = figures(runner.run(job.payload(), prompts, load).run)
            r = rows[name]
            log(f"{name}: {r['status']} window {r['duration_s']} s, {r['repeats']} passes, "
                f"valid {r['energy_valid']} {r['energy_invalid_reasons'] or ''} "
                f"counter/sampled {r['energy_counter_to_sampled']} coverage "
                f"{r['sample_coverage']} {r['error'] or ''}")
    finally:
        runner.close()
    a, b = rows["phases-64"], rows["phases-128"]
    checks = []
    for src, dst, sname, dname in ((a, b, "64", "128"), (b, a, "128", "64")):
        pred, meas = predict(src, dst), per_pass(dst)
        err = None if pred is None or not meas else pred / meas - 1
        checks.append({"from": sname, "to": dname, "predicted_j": pred, "measured_j": meas,
                       "error": err, "goal_met": None if err is None else abs(err) <= 0.03})
        log(f"phases: {dname}-token energy per pass predicted from the {sname}-token split "
            f"{pred} J vs measured {meas} J: error {err}")
    short_flagged = rows["short"]["energy_valid"] is False
    normal_valid = rows["normal"]["energy_valid"] is True
    result = {"model": args.model, "rows": rows, "phases_checks": checks,
              "short_flagged": short_flagged, "normal_valid": normal_valid,
              "wall_s": time.perf_counter() - t0}
    (out / "gpu_validity.json").write_text(json.dumps(result, indent=2, default=str))
    log(f"short window flagged: {short_flagged}; normal window valid: {normal_valid}")
    return 0 if all(r["status"] == "ok" for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
