"""benchmarks/gpu_gaps.py (the H100 proof of thermal gaps) runs its CPU smoke mode end to end
through the real driver, so the script the lead runs on a GPU is known to work here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_gpu_gaps_script_cpu_smoke(tmp_path: Path, llem_cache: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_gaps", "--cpu", "--jobs", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_gaps.json").read_text())
    assert report["ok"] == 4 and report["failed"] == 0  # 2 jobs with gaps off, then 2 on
    assert [(j["thermal_gaps"], j["cycle"]) for j in report["jobs"]] == \
        [(False, 0), (False, 1), (True, 0), (True, 1)]
    assert report["summary"]["off"]["jobs"] == 1 and report["summary"]["on"]["jobs"] == 2
    for j in report["jobs"]:  # no GPU here: the gap columns exist and say nothing
        assert j["status"] == "ok" and j["output_tokens"] == 8 * 8  # 8 prompts x 8 fixed tokens
        assert j["gap_s"] is None and j["start_temperature_c"] is None
    assert "job 4 (gaps on, c1) ok: gap n/a s" in proc.stdout
