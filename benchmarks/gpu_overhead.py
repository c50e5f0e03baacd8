"""llem's measured tokens/s vs a bare `model.generate` loop on a GPU, in the same process.

HF generate on a ~1B model is bound by the host's kernel launches, so its throughput swings
by 10-30% from one minute to the next on a shared host (seen on the H100 here: a bare loop at
1080 and 1440 tok/s a minute apart). One pair of long runs cannot resolve a 2% overhead
under that; this script runs many short pairs, alternating which side goes first (ABBA),
and reports the median of the per-pair ratios beside both sides' spread.

    python -m benchmarks.gpu_overhead                # GPU (about 2 minutes)
    python -m benchmarks.gpu_overhead --cpu --tiny   # smoke test of the same path
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.modules.setdefault("duckdb", None)  # type: ignore[arg-type]  # absent on the GPU machine


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.gpu_measure import MODEL, bare_tokens_per_s, point, run_job
    from llem.harness import JobRunner
    from llem.measure.meter import EnergyMeter
    from llem.prompts import load_builtin
    from llem.tiny_model import build_tiny_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=4.0, help="each side of each pair")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args(argv)
    gpus, dtype = (0, "float32") if args.cpu else (1, "bfloat16")
    secs = args.seconds * (0.1 if args.tiny else 1.0)
    cache = Path(os.environ.get("LLEM_CACHE", "/tmp/llemcache"))
    model_dir = build_tiny_model(cache / ("tiny-v1" if args.tiny else "random-0.8b-v1"),
                                 **({} if args.tiny else MODEL))
    prompts = [p.text for p in load_builtin()][:args.batch]
    meter = EnergyMeter(gpus)
    runner = JobRunner("transformers", {"model": str(model_dir), "dtype": dtype, "engine": {},
                                        "gpus": gpus}, gpus, meter=meter)
    backend = runner.ensure_loaded()
    bare_tokens_per_s(backend, prompts, args.batch, args.new_tokens, 2 * secs)  # warm

    def bare() -> float:
        return float(bare_tokens_per_s(backend, prompts, args.batch, args.new_tokens,
                                       secs)["tokens_per_s"])

    def llem() -> float:
        p = point(str(model_dir), gpus, dtype, args.batch, args.new_tokens, len(prompts),
                  warmup_requests=0, min_window_s=secs)
        return float(run_job(runner, p, prompts)["run"]["tokens_per_s"])

    pairs = []
    for i in range(args.pairs):
        if i % 2 == 0:
            b, m = bare(), llem()
        else:
            m, b = llem(), bare()
        pairs.append({"bare": b, "llem": m, "ratio": m / b})
        print(f"pair {i}: bare {b:.1f} llem {m:.1f} tok/s ratio {m / b:.4f}", flush=True)
    ratios = [p["ratio"] for p in pairs]
    bares = [p["bare"] for p in pairs]
    llems = [p["llem"] for p in pairs]
    out = {"device": [g["name"] for g in meter.gpu_info()] or ["cpu"], "pairs": pairs,
           "seconds_per_side": secs, "batch": args.batch, "new_tokens": args.new_tokens,
           "median_ratio": statistics.median(ratios),
           "mean_ratio": sum(llems) / sum(bares),
           "bare_tokens_per_s": {"median": statistics.median(bares), "min": min(bares),
                                 "max": max(bares)},
           "llem_tokens_per_s": {"median": statistics.median(llems), "min": min(llems),
                                 "max": max(llems)}}
    print(f"llem / bare generate: median of {len(pairs)} pair ratios "
          f"{out['median_ratio']:.4f}, ratio of sums {out['mean_ratio']:.4f}; bare "
          f"{min(bares):.1f}-{max(bares):.1f} tok/s, llem {min(llems):.1f}-{max(llems):.1f}")
    dest = Path(os.environ.get("OUT", "out"))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "gpu_overhead.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
