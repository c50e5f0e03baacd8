"""A real campaign store for the reading commands' tests (query, compare, export, report).

`run_campaign` runs a small grid through the CLI (tiny model, transformers, real Ray) and
returns its store. This machine has no GPU, so energy columns are null there;
`with_gpu_readings` copies the store and fills what NVML would have recorded (energy
counter, idle baseline, 10 Hz power samples) with synthetic readings, the one stand-in for
hardware that cannot exist here. Every other value in it was measured by the run.
"""

from __future__ import annotations

import math
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.cli import run_cli

CAMPAIGN = "readtest"
GRID = f"""
name: {CAMPAIGN}
store: store
models: [llem:tiny]
backends: [transformers]
cycles: 3
grid:
  dtype: float32
  batch_size: [1, 4]
  streaming: [false, true]
  max_new_tokens: 8
dataset: {{source: builtin, num_prompts: 8}}
measurement: {{warmup_requests: 1}}
resources: {{gpus_per_job: 0}}
"""
CONFIGS, CYCLES = 4, 3
GPU = "GPU-00000000-test-stand-in"


def run_campaign(folder: Path) -> Path:
    """Run GRID from `folder` (as a user would: grid file there, store beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.yaml").write_text(GRID)
    r = run_cli("run", "grid.yaml", "--quiet", cwd=folder)
    assert r.returncode == 0, r.stderr[-3000:]
    return folder / "store"


def read_runs(store: Path, campaign: str = CAMPAIGN) -> list[dict[str, Any]]:
    """The runs rows, read straight from the Parquet files with pyarrow."""
    files = sorted((store / "runs" / f"campaign={campaign}").glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _power_w(batch_size: int, streaming: bool) -> float:
    return 90.0 + 40.0 * math.sqrt(batch_size) + (15.0 if streaming else 0.0)


def with_gpu_readings(src: Path, dst: Path) -> Path:
    """A copy of store `src` with the columns NVML fills on a GPU, made up consistently."""
    shutil.copytree(src, dst)
    idle_w = 60.0
    for f in sorted((dst / "runs").glob("*/*.parquet")):
        t = pq.read_table(f)
        row = t.to_pylist()[0]
        power = _power_w(row["batch_size"], row["streaming"]) * (1 + 0.01 * row["cycle"])
        energy = power * row["duration_s"]
        fill = {"energy_j": energy, "gpu_energy_j": energy, "avg_power_w": power,
                "energy_per_token_j": energy / row["output_tokens"],
                "energy_per_request_j": energy / row["num_requests"], "idle_power_w": idle_w,
                "energy_net_j": energy - idle_w * row["duration_s"],
                "energy_net_per_token_j": (energy - idle_w * row["duration_s"]) /
                row["output_tokens"],
                "gpu_count": 1, "gpu_name": "stand-in GPU (tests)", "gpu_uuids": [GPU],
                "energy_method": "nvml_counter", "energy_unavailable": None}
        for col, value in fill.items():
            i = t.schema.get_field_index(col)
            t = t.set_column(i, t.schema.field(i), pa.array([value], t.schema.field(i).type))
        pq.write_table(t, f)
        samples = dst / "samples" / f.parent.name / f.name
        samples.parent.mkdir(parents=True, exist_ok=True)
        n = max(20, int(row["duration_s"] * 10) + 1)
        cols: dict[str, list[Any]] = defaultdict(list)
        for k in range(n):
            ts = row["duration_s"] * k / (n - 1)
            for name, v in (("schema_version", row["schema_version"]),
                            ("campaign", row["campaign"]), ("job_id", row["job_id"]),
                            ("cycle", row["cycle"]), ("t_s", ts), ("gpu_uuid", GPU),
                            ("gpu_index", 0),
                            ("power_w", power * (1 + 0.05 * math.sin(k))),
                            ("temperature_c", 50.0), ("sm_clock_mhz", 1700.0),
                            ("gpu_util_pct", 90.0), ("mem_used_mib", 1000.0)):
                cols[name].append(v)
        from llem.store.schema import SCHEMAS

        schema = SCHEMAS["samples"]  # columns not filled above (newer ones) are null
        pq.write_table(pa.table({c: cols.get(c, [None] * n) for c in schema.names},
                                schema=schema), samples)
    return dst


# Open-loop arrival rates (as configs/arrivals-cpu.yaml, smaller): measurement.request_rate
# is the only thing that varies, swept outside `grid:`.
ARRIVALS = "arrivalstest"
ARRIVALS_GRID = f"""
name: {ARRIVALS}
store: store
models: [llem:tiny]
backends: [transformers]
cycles: 3
grid:
  dtype: float32
  batch_size: 4
  max_new_tokens: 8
  streaming: true
dataset: {{num_prompts: 8}}
measurement:
  request_rate: [4, 16, 64]
  arrival: poisson
  max_concurrency: 4
  warmup_requests: 1
resources: {{gpus_per_job: 0}}
"""
ARRIVAL_RATES = (4.0, 16.0, 64.0)

_RUN: dict[str, Path] = {}  # grid text -> its store, once per pytest process


def run_grid(folder: Path, grid: str, timeout: float = 600) -> Path:
    """Run `grid` from `folder` through the CLI; its store (beside the grid file). A grid
    already run by this pytest process is not run again: its store is returned (tests only
    read it)."""
    if grid in _RUN and _RUN[grid].is_dir():
        return _RUN[grid]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.yaml").write_text(grid)
    r = run_cli("run", "grid.yaml", "--quiet", cwd=folder, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    _RUN[grid] = folder / "store"
    return _RUN[grid]


# A server-mode campaign on a GPU, written through llem's own Store (RunRow records of real
# points and job ids, config columns as the harness fills them) with the figures of a simple
# serving model: the GPU and a load that over-saturates a server cannot exist here, and the
# report's rate-level plots need both. Two configurations (max_new_tokens) at four rate
# levels (server.rate) over three cycles; the 64-token configuration's top level is over its
# capacity: stopped early, saturated, not a normal point.
SERVER = "servertest"
SERVER_TOKENS = (16, 64)
SERVER_RATES = (1.0, 2.0, 4.0, 8.0)
SERVER_CYCLES = 3
SATURATED_LEVEL = (64, 8.0)  # (max_new_tokens, server.rate)


def _serving(tokens: int, rate: float, cycle: int) -> dict[str, Any]:
    """A level's figures: capacity 400 / tokens requests/s; power grows with utilisation."""
    capacity = 400.0 / tokens
    saturated = rate > capacity
    jitter = 1.0 + 0.02 * (cycle - 1)
    achieved = min(rate, capacity) * 0.97 * jitter
    util = achieved / capacity
    window = 24 / achieved
    power = (120.0 + 280.0 * util + tokens / 8) * jitter
    out_tokens = round(24 * tokens * (0.5 if saturated else 1.0))
    energy = power * window
    good = 0.4 if saturated else 1.0
    return {
        "arrival_rate_achieved": achieved, "steady_state_s": window, "duration_s": window,
        "requests_in_window": 24, "num_requests": 24, "output_tokens": out_tokens,
        "output_tokens_in_window": float(out_tokens), "tokens_per_s": out_tokens / window,
        "requests_per_s": 24 / window, "energy_j": energy, "gpu_energy_j": energy,
        "energy_per_token_j": energy / out_tokens, "energy_per_request_j": energy / 24,
        "avg_power_w": power, "goodput_requests_per_s": achieved * good,
        "slo_attainment": good, "energy_per_good_request_j": energy / (24 * good),
        "ttft_p50_s": (0.03 + 0.2 * util**2) * jitter,
        "ttft_p99_s": (0.05 + 0.6 * util**2 + (3.0 if saturated else 0.0)) * jitter,
        "itl_p50_s": 0.008 * (1 + util) * jitter, "itl_p99_s": 0.012 * (1 + 2 * util) * jitter,
        "latency_p50_s": (0.2 + 0.01 * tokens * (1 + util)) * jitter,
        "latency_p99_s": (0.3 + 0.02 * tokens * (1 + util)) * jitter,
        "saturated": saturated, "stop_reason": "saturated" if saturated else "requests",
        "saturation_reason": "achieved send rate well under the target" if saturated
        else None,
        "server_profile": f"poisson rate={rate} seed=0", "gpu_count": 1,
        "gpu_name": "stand-in GPU (tests)", "gpu_uuids": [GPU],
        "energy_method": "nvml_counter", "host": "test-host",
    }


def server_store(dst: Path) -> Path:
    """The SERVER campaign's store at `dst`: 2 configurations x 4 levels x 3 cycles."""
    import time

    from llem.config.job import Job, job_id_of, load_key_of
    from llem.config.models import Point
    from llem.harness.result import config_columns
    from llem.store.run_row import Result
    from llem.store.store import Store

    store = Store(dst)
    now = time.time()
    for tokens in SERVER_TOKENS:
        for rate in SERVER_RATES:
            point = Point.model_validate({
                "backend": "transformers", "model": "llem:tiny", "dtype": "float16",
                "max_new_tokens": tokens, "mode": "server",
                "server": {"profile": "poisson", "rate": rate, "requests": 24,
                           "slo_ttft_s": 1.0, "slo_tpot_s": 0.1},
                "resources": {"gpus_per_job": 1}})
            for cycle in range(SERVER_CYCLES):
                job = Job(SERVER, point, cycle, job_id_of(point), load_key_of(point))
                run = config_columns(job)
                run.update({"status": "ok", "started_at": now, "finished_at": now + 1.0,
                            **_serving(tokens, rate, cycle)})
                store.write_result(Result(run))
    return dst


def server_levels(store: Path) -> dict[tuple[int, float], dict[str, Any]]:
    """Per (max_new_tokens, server.rate) level of SERVER, read back with pyarrow: the mean
    of each figure over the cycles, and whether any cycle was saturated."""
    rows = read_runs(store, SERVER)
    out: dict[tuple[int, float], dict[str, Any]] = {}
    for key in {(r["max_new_tokens"], r["request_rate"]) for r in rows}:
        sel = [r for r in rows if (r["max_new_tokens"], r["request_rate"]) == key]
        out[key] = {m: sum(r[m] for r in sel) / len(sel) for m in (
            "arrival_rate_achieved", "energy_per_token_j", "goodput_requests_per_s",
            "ttft_p99_s", "itl_p99_s", "slo_attainment")}
        out[key]["saturated"] = any(r["saturated"] for r in sel)
        out[key]["n"] = len(sel)
    return out
