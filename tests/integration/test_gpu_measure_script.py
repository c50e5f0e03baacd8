"""The H100 proof script (benchmarks/gpu_measure.py) runs its whole code path on the CPU with
the tiny model, duckdb made unimportable, so the one GPU run does not crash on a typo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_gpu_measure_smoke(tiny_model: Path, llem_cache: Path, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "OUT": str(tmp_path), "LLEM_CACHE": str(llem_cache)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_measure", "--cpu", "--tiny",
                           "--windows", "2", "--cycles", "2", "--batch", "2",
                           "--new-tokens", "2", "--rest-s", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figs = json.loads((tmp_path / "gpu_measure.json").read_text())
    assert figs["duckdb_imported"] is False
    assert len(figs["windows"]) == 1 and figs["windows"][0]["flops_estimate"] > 0
    assert figs["cycles"]["energy_per_token_j"]["n"] == 0  # no energy source on this machine
    assert len(figs["cycles"]["runs"]) == 2 and figs["overhead"]["ratio"] > 0
    assert figs["streaming"]["ttft_p50_s"] > 0
    assert figs["poisson"]["arrival_rate_achieved"] > 0
    assert "4. tokens/s llem" in proc.stdout
