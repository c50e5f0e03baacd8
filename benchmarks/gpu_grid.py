"""A grid file's campaign on a GPU machine that has no Ray (the lent machines have none):
every job of `llem.config.grid.iter_jobs`, in the planned order, each load group through
one `llem.harness.runner.JobRunner` as a Ray worker runs it, each result written to a real
store ($OUT/store by default) as the driver writes it. The store comes back with $OUT, so
`llem compare` and `llem report` read it on any machine afterwards.

    python3 -m benchmarks.gpu_grid configs/h100-vllm.yaml --cycles 1
    tar -xf <files_at>/store.tar && llem compare h100-vllm --store store --by batch_size
    # smoke test on the CPU:
    python -m benchmarks.gpu_grid configs/demo.yaml --cycles 1 --store /tmp/grid-store
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log

sys.modules.setdefault("duckdb", None)  # type: ignore[arg-type]  # absent on the GPU machine

SHOWN = ("status", "batch_size", "streaming", "tokens_per_s", "energy_per_token_j",
         "energy_valid", "ttft_p50_s", "itl_p50_s", "duration_s", "model_loads", "error")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("grid", type=Path)
    ap.add_argument("--cycles", type=int, default=None, help="replaces the grid's cycles")
    ap.add_argument("--store", type=Path, default=None, help="default: $OUT/store")
    args = ap.parse_args(argv)
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="llem-gpu-grid-"))
    os.environ.setdefault("LLEM_LOG_DIR", str(out / "logs"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llem.config.grid import iter_jobs
    from llem.config.load import load_campaign
    from llem.harness.runner import JobRunner, load_of
    from llem.prompts.dataset import load_prompts
    from llem.store.store import Store

    loaded = load_campaign(args.grid, {"cycles": args.cycles} if args.cycles else None)
    store = Store(args.store or out / "store")
    store.check_writable(loaded.campaign.name)
    base = args.grid.resolve().parent
    runner: JobRunner | None = None
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for job in iter_jobs(loaded):
            load = load_of(job.point)
            if runner is None or (runner.backend_name, runner.load) != (job.point.backend, load):
                if runner is not None:  # a new load group: a fresh worker, as for vLLM
                    runner.close()
                runner = JobRunner(job.point.backend, load, job.point.resources.gpus_per_job)
            prompts = load_prompts(job.point.dataset, base)
            result = runner.run(job.payload(), prompts, load)
            store.write_result(result)
            row = {k: getattr(result.run, k, None) for k in SHOWN}
            row.update(job_id=job.job_id, cycle=job.cycle,
                       engine=job.point.engine, wall_s=round(time.perf_counter() - t0, 1))
            rows.append(row)
            log(f"gpu-grid: {row}")
            (out / "gpu_grid.json").write_text(json.dumps(rows, indent=2, default=str))
            if args.store is None:  # after each job (a call cut at its limit keeps them): the
                with tarfile.open(out / "store.tar", "w") as tar:  # device tool leaves out
                    tar.add(out / "store", arcname="store")  # folders named campaign=...
    finally:
        if runner is not None:
            runner.close()
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"\n{loaded.campaign.name}: {ok} of {len(rows)} jobs ok in "
          f"{time.perf_counter() - t0:.0f} s; store {store.uri}")
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
