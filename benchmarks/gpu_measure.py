"""GPU proof of llem's measurement (issue 3): one run on one H100, through llem's real
harness, energy meter and transformers backend, on a random-weight Llama built offline:
llem:random-7b (Llama-2-7B's shape, bf16) at batch 256 by default, where decoding is bound by
the GPU; `--model random-0.8b --batch 32` shows a host-bound one.

Prints, and writes as JSON to $OUT/gpu_measure.json:
  1. NVML energy counter vs the integral of sampled power, for windows of ~2, 10, 30 s
     (goal: within 2% for windows >= 10 s);
  2. J/token over 5 cycles of one configuration: mean, std, 95% CI, CV (goal: CV < 2%);
  3. the idle baseline cold (before CUDA starts), just after the model load, just after
     work, and after a rest, with the GPU state of each;
  4. llem's tokens/s vs a bare `model.generate` loop in the same process, pairs alternating
     which side goes first, median of the pair ratios (goal >= 0.98);
  plus a streaming run's TTFT/ITL and the FLOPs estimate's achieved TFLOP/s.

    python -m benchmarks.gpu_measure                 # the H100 run (about 7 minutes)
    python -m benchmarks.gpu_measure --cpu --tiny    # smoke test of the same code path

Needs torch, transformers, pyarrow, nvidia-ml-py, pydantic, pyyaml; not duckdb (made
unimportable below, so the CPU smoke run proves the GPU run will not need it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log

sys.modules.setdefault("duckdb", None)  # type: ignore[arg-type]  # absent on the GPU machine



def short_prompts(tokenizer: Any, batch: int, max_tokens: int) -> list[str]:
    """batch builtin prompts of at most max_tokens (cycled when fewer): a batch pads to its
    longest prompt, and 256 x 641 tokens of KV cache would not fit beside a 7B model."""
    from llem.prompts.files import load_builtin

    texts = [p.text for p in load_builtin() if len(tokenizer(p.text).input_ids) <= max_tokens]
    return (texts * (batch // len(texts) + 1))[:batch]


def point(model: str, gpus: int, dtype: str, batch: int, new_tokens: int, n_prompts: int,
          **measurement: Any) -> Any:
    from llem.config.models import Point

    return Point(backend="transformers", model=model, dtype=dtype, batch_size=batch,
                 max_new_tokens=new_tokens, output_policy="fixed",
                 dataset={"num_prompts": n_prompts},
                 measurement={"thermal_gaps": False, "idle_baseline_s": 0, **measurement},
                 resources={"gpus_per_job": gpus})


def run_job(runner: Any, p: Any, prompts: list[str], cycle: int = 0) -> Any:
    """One job through JobRunner.run, as a Ray worker runs it; rows checked against the
    store's fixed schemas."""
    from llem.config.job import Job
    from llem.store.schema import to_table

    job = Job("gpu-measure", p, cycle, job_id=f"{abs(hash(p.model_dump_json())) % 16**8:08x}",
              load_key="gpu-measure")
    res = runner.run(job.payload(), prompts)
    run = res.run
    if run.status != "ok":
        raise RuntimeError(f"job failed: {run.error}\n{run.traceback or ''}")
    for table, rows in (("runs", [run]), ("requests", res.requests), ("samples", res.samples)):
        to_table(table, rows)
    return res


def bare_tokens_per_s(backend: Any, prompts: list[str], batch: int, new_tokens: int,
                      seconds: float) -> dict[str, Any]:
    """The same batches through model.generate directly, as a user's own loop would."""
    torch = backend.torch
    model, tok = backend.model, backend.tokenizer
    chunks = [prompts[i:i + batch] for i in range(0, len(prompts), batch)]
    tokens = passes = 0
    t0 = time.perf_counter()
    while True:
        for chunk in chunks:
            enc = tok(chunk, return_tensors="pt", padding=True).to(model.device)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            tokens += len(out[:, enc["input_ids"].shape[1]:].reshape(-1).tolist())  # host copy
        passes += 1
        if time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    return {"tokens": tokens, "duration_s": dt, "passes": passes, "tokens_per_s": tokens / dt}


def idle_fig(idle: Any) -> dict[str, Any] | None:
    if idle is None:
        return None
    watts = list(idle.power_w.values())
    return {"power_w": sum(watts) if None not in watts else None, **idle.columns()}


def pick(run: Any, *keys: str) -> dict[str, Any]:
    """Columns of a runs row (llem.store.run_row.RunRow) by name."""
    return {k: getattr(run, k) for k in keys}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="no GPU: smoke-test the code path")
    ap.add_argument("--tiny", action="store_true", help="the 2-layer tiny model, short windows")
    ap.add_argument("--windows", default="2,10,30", help="window lengths (s) for figure 1")
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--model", default="random-7b",
                    help="a builtin llem:<model> (random-7b: GPU-bound; random-0.8b: host-bound)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=4, help="llem / bare pairs for figure 4")
    ap.add_argument("--rest-s", type=float, default=15.0, help="rest before the rested idle")
    args = ap.parse_args(argv)
    scale = 0.05 if args.tiny else 1.0  # smoke: every duration 20x shorter
    warm = 2 if args.tiny else 10  # warmup cap, in batches
    gpus = 0 if args.cpu else 1
    dtype = "float32" if args.cpu else "bfloat16"
    out_dir = Path(os.environ.get("OUT", "out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    from llem.harness.runner import JobRunner
    from llem.harness.runtime import runtime_info
    from llem.measure.meter import EnergyMeter
    from llem.measure.stats import cycle_stats
    from llem.models.builtin import resolve_model

    meter = EnergyMeter(gpus)  # NVML only: CUDA is not started yet
    log(f"energy method: {meter.method} ({meter.reason or 'ok'}); "
        f"GPUs: {[g['name'] for g in meter.gpu_info()]}")
    idle_s = 5.0 * scale
    figs: dict[str, Any] = {"env": {k: v for k, v in runtime_info("transformers").items()
                                    if k.endswith("version") or k in ("cpu_model", "host")},
                            "gpus": meter.gpu_info(), "energy_method": meter.method,
                            "energy_unavailable": meter.reason, "idle": {},
                            "power_source": [g.power_source() for g in meter.gpus]}
    figs["idle"]["cold_before_cuda"] = idle_fig(meter.idle_baseline(idle_s))

    os.environ.setdefault("LLEM_CACHE", str(Path(tempfile.gettempdir()) / "llem-gpu-measure"))
    t = time.perf_counter()
    model_dir = resolve_model("llem:tiny" if args.tiny else f"llem:{args.model}")
    log(f"model {model_dir} ready in {time.perf_counter() - t:.1f} s")
    runner = JobRunner("transformers", {"model": str(model_dir), "dtype": dtype, "engine": {},
                                        "gpus": gpus}, gpus, meter=meter)
    t = time.perf_counter()
    backend = runner.ensure_loaded()
    figs["model"] = {"path": str(model_dir), "load_s": time.perf_counter() - t,
                     "parameters": sum(p.numel() for p in backend.model.parameters()),
                     "dtype": dtype, "name": "llem:tiny" if args.tiny else f"llem:{args.model}"}
    prompts = short_prompts(backend.tokenizer, args.batch, args.max_prompt_tokens)
    figs["idle"]["just_after_load"] = idle_fig(meter.idle_baseline(idle_s))
    log(f"loaded {figs['model']['parameters'] / 1e9:.2f}B params; idle cold "
        f"{figs['idle']['cold_before_cuda']}, after load {figs['idle']['just_after_load']}")

    def p_(**m: Any) -> Any:
        return point(str(model_dir), gpus, dtype, args.batch, args.new_tokens, len(prompts),
                     **m)

    # streaming: true per-token times through the real streamer (also warms the model up)
    run = run_job(runner, p_(warmup_requests=warm * args.batch, min_window_s=0), prompts).run
    figs["first_warmup"] = pick(run, "warmup_requests", "warmup_converged")
    sp = p_(warmup_requests=0, min_window_s=0).model_copy(update={"streaming": True})
    res = run_job(runner, sp, prompts)
    figs["streaming"] = pick(res.run, "ttft_p50_s", "ttft_p99_s", "itl_mean_s", "itl_p50_s",
                             "itl_p99_s", "tpot_mean_s", "tokens_per_s")
    log(f"streaming: {figs['streaming']}")
    # open-loop Poisson arrivals at 8 requests/s, at most 8 in flight, streaming
    few = prompts[:32]
    ap = point(str(model_dir), gpus, dtype, args.batch, args.new_tokens, len(few),
               warmup_requests=0, min_window_s=0, request_rate=8.0 / scale, arrival="poisson",
               max_concurrency=8).model_copy(update={"streaming": True})
    res = run_job(runner, ap, few)
    figs["poisson"] = pick(res.run, "request_rate", "arrival_rate_achieved",
                           "e2e_latency_p50_s", "e2e_latency_p99_s", "ttft_p50_s",
                           "ttft_p99_s", "duration_s")
    log(f"poisson: {figs['poisson']}")

    # 1. counter vs integrated power, by window length
    figs["windows"] = []
    for w in [float(x) * scale for x in args.windows.split(",")]:
        res = run_job(runner, p_(warmup_requests=args.batch, min_window_s=w), prompts)
        run = res.run
        row = pick(run, "min_window_s", "duration_s", "repeats", "gpu_energy_j",
                   "gpu_energy_sampled_j", "energy_counter_to_sampled", "avg_power_w",
                   "tokens_per_s", "flops_estimate", "tflops_per_s_estimate")
        row["samples"] = len(res.samples)
        row["sample_fields_seen"] = sorted({k for smp in res.samples for k, v in smp.items()
                                            if v is not None})
        r = row["energy_counter_to_sampled"]
        row["within_2pct"] = abs(r - 1) <= 0.02 if r is not None else None
        figs["windows"].append(row)
        log(f"window {w:.1f} s: {row}")
    figs["idle"]["just_after_work"] = idle_fig(meter.idle_baseline(idle_s))

    # 2. J/token over cycles of one configuration (default min window: 10 s on a GPU)
    cycles = []
    for c in range(args.cycles):
        m: dict[str, Any] = {"idle_baseline_s": idle_s, "warmup_requests": warm * args.batch}
        if args.cpu or args.tiny:
            m["min_window_s"] = 10.0 * scale
        run = run_job(runner, p_(**m), prompts, cycle=c).run
        cycles.append(pick(run, "duration_s", "repeats", "energy_per_token_j",
                           "energy_net_per_token_j", "tokens_per_s", "avg_power_w",
                           "idle_power_w", "idle_temperature_c", "idle_sm_clock_mhz",
                           "warmup_requests", "warmup_converged", "energy_counter_to_sampled",
                           "min_window_s"))
        log(f"cycle {c}: {cycles[-1]}")
    figs["cycles"] = {"runs": cycles, **{
        k: cycle_stats([r[k] for r in cycles])
        for k in ("energy_per_token_j", "energy_net_per_token_j", "tokens_per_s")}}
    cv = figs["cycles"]["energy_per_token_j"]["cv"]
    figs["cycles"]["j_per_token_cv_below_2pct"] = cv < 0.02 if cv is not None else None

    # 4. llem vs a bare generate loop, ABBA so drift does not favour either side
    secs = 8.0 * scale
    pairs = []
    for i in range(args.pairs):
        def bare() -> dict[str, Any]:
            return bare_tokens_per_s(backend, prompts, args.batch, args.new_tokens, secs)

        def llem() -> Any:
            return run_job(runner, p_(warmup_requests=0, min_window_s=secs), prompts).run

        b, run = (bare(), llem()) if i % 2 == 0 else tuple(reversed((llem(), bare())))
        pairs.append({"bare": b, "llem_tokens_per_s": run.tokens_per_s,
                      "llem_duration_s": run.duration_s,
                      "ratio": run.tokens_per_s / b["tokens_per_s"]})
        log(f"bare {b['tokens_per_s']:.1f} tok/s vs llem {run.tokens_per_s:.1f} tok/s")
    bare_mean = sum(p["bare"]["tokens_per_s"] for p in pairs) / len(pairs)
    llem_mean = sum(p["llem_tokens_per_s"] for p in pairs) / len(pairs)
    median = statistics.median(p["ratio"] for p in pairs)
    figs["overhead"] = {"pairs": pairs, "bare_tokens_per_s": bare_mean,
                        "llem_tokens_per_s": llem_mean, "ratio": median,
                        "ratio_of_means": llem_mean / bare_mean,
                        "ratio_at_least_0_98": median >= 0.98}

    meter.sleep(args.rest_s * scale)
    figs["idle"]["rested"] = idle_fig(meter.idle_baseline(idle_s))
    runner.close()
    figs["wall_s"] = time.perf_counter() - t_start
    figs["duckdb_imported"] = sys.modules.get("duckdb") is not None
    (out_dir / "gpu_measure.json").write_text(json.dumps(figs, indent=2, default=str) + "\n")
    summary(figs)
    log(f"wrote {out_dir / 'gpu_measure.json'} ({figs['wall_s']:.0f} s)")
    return figs


def summary(f: dict[str, Any]) -> None:
    def num(v: Any, fmt: str = ".4g") -> str:
        return "n/a" if v is None else format(v, fmt)

    print("\n== llem measurement proof ==")
    print("1. counter / integrated sampled power, by window:")
    for w in f["windows"]:
        print(f"   {num(w['duration_s'], '.1f'):>6} s  ratio {num(w['energy_counter_to_sampled'])}"
              f"  ({num(w['gpu_energy_j'])} J vs {num(w['gpu_energy_sampled_j'])} J)"
              f"  achieved {num(w['tflops_per_s_estimate'])} TFLOP/s (estimate)")
    c = f["cycles"]["energy_per_token_j"]
    print(f"2. J/token over {c['n']} cycles: mean {num(c['mean'])} std {num(c['std'])} "
          f"95% CI +-{num(c['ci95'])} CV {num(c['cv'])}")
    print("3. idle baseline (W): " + ", ".join(
        f"{k} {num((v or {}).get('power_w'), '.1f')}" for k, v in f["idle"].items()))
    o = f["overhead"]
    print(f"4. tokens/s llem {num(o['llem_tokens_per_s'], '.1f')} vs bare generate "
          f"{num(o['bare_tokens_per_s'], '.1f')}: median of {len(o['pairs'])} pair ratios "
          f"{num(o['ratio'], '.4f')}")
    s = f["streaming"]
    print(f"   streaming TTFT p50 {num(s['ttft_p50_s'])} s, ITL p50 {num(s['itl_p50_s'])} s")


if __name__ == "__main__":
    main()
