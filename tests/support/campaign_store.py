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

        pq.write_table(pa.table(dict(cols), schema=SCHEMAS["samples"]), samples)
    return dst
