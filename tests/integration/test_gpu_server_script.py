"""The GPU proof of server mode (benchmarks/gpu_server.py) runs its whole code path on the
CPU with the tiny model and `transformers serve`, duckdb made unimportable, so the one GPU
run does not crash on a typo: a sweep's three levels, each with a window and figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_gpu_server_smoke(tiny_model: Path, llem_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "LLEM_CACHE": str(llem_cache)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_server", "--cpu", "--tiny",
                           "--cycles", "1", "--levels", "1", "--level-s", "3", "--ramp-s",
                           "0.5", "--warmup", "2", "--new-tokens", "4", "--prompts", "8",
                           "--idle-s", "0", "--max-concurrency", "4"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figs = json.loads((tmp_path / "gpu_server.json").read_text())
    assert figs["duckdb_imported"] is False
    levels = figs["levels"]
    assert [r["sweep_level"] for r in levels] == [0, 2, 1]
    assert all(r["status"] == "ok" and r["steady_state_s"] > 0 for r in levels)
    sync, top, middle = levels
    assert 0 < sync["arrival_rate_achieved"] < top["arrival_rate_achieved"]
    assert sync["arrival_rate_achieved"] < middle["request_rate"] < \
        top["arrival_rate_achieved"] * 1.5
    assert figs["server_stop"]["previous_server_stop_s"] > 0
    assert "counter vs sampled" in proc.stdout
