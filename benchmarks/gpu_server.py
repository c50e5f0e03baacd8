"""GPU proof of server mode (server issue): `transformers serve --continuous-batching` on one
GPU with llem:random-0.8b, started by llem's real job runner (the code a Ray worker runs,
called inline: the GPU machines have no Ray), measured as a sweep: the synchronous rate and
the maximum throughput first, then 4 Poisson rate levels between them, 2 cycles.

Prints, and writes as JSON to $OUT/gpu_server.json, per level and cycle: the target and
achieved rate, J/token over the steady-state window, goodput and SLO attainment, TTFT p99,
ITL p99, the window's length, and NVML counter vs sampled energy (goal: within 2% on
windows of 10 s or more); plus the server's start and stop (GPU memory released).

    bash ../shared/device/prepare-wheels.sh aiohttp aiosignal frozenlist multidict yarl \\
        propcache aiohappyeyeballs attrs fastapi starlette uvicorn h11 anyio sniffio \\
        openai httpx httpcore distro jiter psutil
    # on the GPU machine (carry .whl):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
    OUT=$OUT python -m benchmarks.gpu_server             # about 8 minutes
    python -m benchmarks.gpu_server --cpu --tiny         # smoke test of the same code path
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


def points(args: argparse.Namespace) -> list[Any]:
    """The sweep's points, in the order its levels must run (llem.config.grid)."""
    from llem.config.grid import sweep_levels
    from llem.config.models import Point

    base = Point(
        backend="transformers", model=args.model, dtype=args.dtype, mode="server",
        max_new_tokens=args.new_tokens, output_policy="fixed",
        dataset={"num_prompts": args.prompts},
        measurement={"thermal_gaps": False, "idle_baseline_s": args.idle_s},
        resources={"gpus_per_job": 0 if args.cpu else 1},
        server={"profile": "sweep", "sweep_levels": args.levels, "duration_s": args.level_s,
                "ramp_s": args.ramp_s, "warmup_requests": args.warmup,
                "slo_ttft_s": args.slo_ttft_s, "slo_tpot_s": args.slo_tpot_s,
                "concurrency": args.max_concurrency})
    return list(sweep_levels(base))


def level_figures(run: Any) -> dict[str, Any]:
    keys = ("sweep_level", "sweep_role", "server_profile", "request_rate",
            "arrival_rate_achieved", "steady_state_s", "requests_in_window",
            "output_tokens_in_window", "tokens_per_s", "energy_j", "energy_per_token_j",
            "gpu_energy_j", "gpu_energy_sampled_j", "energy_counter_to_sampled",
            "goodput_requests_per_s", "slo_attainment", "ttft_p50_s", "ttft_p99_s",
            "itl_p99_s", "saturated", "saturation_reason", "status", "error",
            "server_start_s", "previous_server_gpu_memory_released", "energy_unavailable")
    return {k: getattr(run, k, None) for k in keys}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="no GPU: smoke test on the CPU")
    ap.add_argument("--tiny", action="store_true", help="llem:tiny instead of random-0.8b")
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--level-s", type=float, default=20.0)
    ap.add_argument("--ramp-s", type=float, default=3.0)
    ap.add_argument("--warmup", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--idle-s", type=float, default=2.0)
    ap.add_argument("--max-concurrency", type=int, default=None)
    ap.add_argument("--slo-ttft-s", type=float, default=0.5)
    ap.add_argument("--slo-tpot-s", type=float, default=0.05)
    args = ap.parse_args(argv)
    args.model = "llem:tiny" if args.tiny else "llem:random-0.8b"
    args.dtype = "float32" if args.cpu else "bfloat16"
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="llem-gpu-server-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LLEM_LOG_DIR", str(out / "logs"))

    from llem.config.job import Job, job_id_of, load_key_of
    from llem.harness.runner import JobRunner, load_of
    from llem.prompts.dataset import load_prompts

    pts = points(args)
    load = load_of(pts[0])
    runner = JobRunner("transformers", load, pts[0].resources.gpus_per_job)
    prompts = load_prompts(pts[0].dataset, Path.cwd())
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for cycle in range(args.cycles):
            for p in pts:
                job = Job("gpu-server", p, cycle, job_id_of(p), load_key_of(p))
                result = runner.run(job.payload(), prompts, load)
                fig = {"cycle": cycle, **level_figures(result.run)}
                rows.append(fig)
                log(f"cycle {cycle} level {fig['sweep_level']} ({fig['server_profile']}): "
                    f"{fig['status']} achieved {fig['arrival_rate_achieved']} req/s, "
                    f"J/token {fig['energy_per_token_j']}, goodput "
                    f"{fig['goodput_requests_per_s']}, TTFT p99 {fig['ttft_p99_s']}, "
                    f"counter/sampled {fig['energy_counter_to_sampled']}, window "
                    f"{fig['steady_state_s']} s {fig['error'] or ''}")
    finally:
        runner.close()
    stop = runner.last_stop
    long = [r for r in rows if (r["steady_state_s"] or 0) >= 10 and
            r["energy_counter_to_sampled"] is not None]
    worst = max((abs(r["energy_counter_to_sampled"] - 1) for r in long), default=None)
    figures = {"model": args.model, "levels": rows, "server_stop": stop,
               "counter_vs_sampled_worst_10s": worst,
               "counter_vs_sampled_goal_met": None if worst is None else worst <= 0.02,
               "wall_s": time.perf_counter() - t0, "duckdb_imported": "duckdb" in sys.modules
               and sys.modules["duckdb"] is not None}
    (out / "gpu_server.json").write_text(json.dumps(figures, indent=2, default=str))
    print("\nlevel  cycle  target/s  achieved/s  J/token  goodput/s  TTFT p99 s  counter/sampled")
    for r in rows:
        def f(v: Any, spec: str = ".4g") -> str:
            return "-" if v is None else format(v, spec)
        print(f"{f(r['sweep_level'], 'd'):>5}  {r['cycle']:>5}  {f(r['request_rate']):>8}  "
              f"{f(r['arrival_rate_achieved']):>10}  {f(r['energy_per_token_j']):>7}  "
              f"{f(r['goodput_requests_per_s']):>9}  {f(r['ttft_p99_s']):>10}  "
              f"{f(r['energy_counter_to_sampled'])}")
    print(f"counter vs sampled, worst on windows >= 10 s: {worst}; server stop: {stop}")
    failed = [r for r in rows if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
