"""The GPU-bound proof script (benchmarks/gpu_bound.py) runs its whole code path on the CPU
with the tiny model, duckdb unimportable, so the one GPU run does not crash on a typo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_gpu_bound_smoke(llem_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "LLEM_CACHE": str(llem_cache)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_bound", "--cpu", "--tiny",
                           "--batch", "3", "--new-tokens", "2", "--pairs", "2", "--cycles", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    figs = json.loads((tmp_path / "gpu_bound.json").read_text())
    assert len(figs["cycles"]["runs"]) == 2
    assert figs["cycles"]["tokens_per_s"]["n"] == 2
    assert figs["cycles"]["energy_per_token_j"]["n"] == 0  # no energy source here
    assert len(figs["overhead"]["pairs"]) == 2 and figs["overhead"]["median_ratio"] > 0
    assert figs["prompts"]["distinct"] == 3
    assert "llem / bare generate" in proc.stdout
