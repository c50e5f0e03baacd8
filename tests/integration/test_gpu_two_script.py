"""The 2-GPU proof script (benchmarks/gpu_two.py) runs its whole code path on the CPU (2
declared GPUs, the tiny model, duckdb unimportable), so the one GPU run does not crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_gpu_two_smoke(llem_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "LLEM_CACHE": str(llem_cache)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_two", "--cpu"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    figs = json.loads((tmp_path / "gpu_two.json").read_text())
    par = figs["parallel"]["jobs"]
    assert len(par) == 4 and len(figs["parallel"]["gpu_sets"]) == 2  # both GPUs in use
    assert len(figs["alone"]["jobs"]) == 1
    both = figs["both"]["jobs"]
    assert len(both) == 1 and sorted(both[0]["visible_devices"].split(",")) == ["0", "1"]
