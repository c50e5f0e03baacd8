"""Server mode on a GPU through llem (jobs/vllm/README.md): one `vllm serve` started as llem's
server mode starts it, driven by llem's client at closed-loop concurrency levels, each level a
job of its own with its own energy window; J/token, output tok/s, TTFT and ITL per level.
Run on the GPU machine after benchmarks.gpu_vllm (same install, same model and engine):

    . benchmarks/vllm_install.sh && python3 -m benchmarks.gpu_vllm_sweep [--levels 1,16,64,256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.gpu_vllm import SERVER_KEYS, parse, point, run_points

KEYS = (*SERVER_KEYS, "itl_p50_s", "server_concurrency")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,16,64,256")
    ap.add_argument("--level-s", type=float, default=10.0)
    ours, rest = ap.parse_known_args(argv)
    args = parse(rest)
    out = Path(os.environ.get("OUT") or ".")
    os.environ.setdefault("LLEM_LOG_DIR", str(out / "logs"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pts = [point(args, mode="server", server={
        "profile": "concurrency", "concurrency": int(n), "duration_s": ours.level_s,
        "ramp_s": 0, "warmup_requests": min(int(n) * 4, args.prompts)})
        for n in ours.levels.split(",")]
    rows = run_points("gpu-vllm-sweep", pts, KEYS)
    (out / "gpu_vllm_sweep.json").write_text(json.dumps(rows, indent=2, default=str))
    print("\nconcurrency  tok/s      J/token  valid  TTFT p50 s  TTFT p99 s  ITL p50 s  ITL p99 s")
    for r in rows:
        f = {k: ("-" if r.get(k) is None else format(r[k], ".4g") if isinstance(r[k], float)
                 else str(r[k])) for k in KEYS}
        print(f"{f['server_profile']:<11}  {f['tokens_per_s']:>9}  {f['energy_per_token_j']:>7}"
              f"  {f['energy_valid']:>5}  {f['ttft_p50_s']:>10}  {f['ttft_p99_s']:>10}"
              f"  {f['itl_p50_s']:>9}  {f['itl_p99_s']:>9}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
