"""The grid-on-a-GPU script (benchmarks/gpu_grid.py) runs a grid's jobs through the real job
runner into a real store that the CLI reads afterwards, and keeps the store as a tar after
every job (the device tool leaves out folders named campaign=...)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.paths import ROOT

GRID = """
name: gg
models: [alpha, beta/gamma]
backends: [noop]
grid: {max_new_tokens: 4, batch_size: [1, 2], generate.fail: [null, boom]}
exclude: [{batch_size: 2, generate.fail: boom}]
noop: {request_s: 0.01}
dataset: {num_prompts: 4}
measurement: {warmup_requests: 0, thermal_gaps: false}
resources: {gpus_per_job: 0}
"""


@pytest.mark.slow
def test_gpu_grid_smoke(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(GRID)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_grid", str(tmp_path / "g.yaml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]  # 2 failed jobs
    assert "gg: 4 of 6 jobs ok" in proc.stdout, proc.stdout
    with tarfile.open(out / "store.tar") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    r = run_cli("query", "SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY "
                "status", "--store", str(tmp_path / "back" / "store"), "--format", "csv")
    assert r.returncode == 0 and r.stdout.split() == ["status,n", "failed,2", "ok,4"], r.stderr
