"""The GPU proof of validity flags and phases (benchmarks/gpu_validity.py) runs its whole
code path on the CPU with the tiny model, duckdb made unimportable: four jobs (a short and
a normal window, two with measurement.phases), each with its figures in the JSON. Without
a GPU there is no energy, so validity is null (not judged) and the phase checks have
nothing to predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_gpu_validity_smoke(tiny_model: Path, llem_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "LLEM_CACHE": str(llem_cache)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_validity", "--cpu", "--tiny",
                           "--prompts", "8", "--batch", "4", "--idle-s", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figs = json.loads((tmp_path / "gpu_validity.json").read_text())
    rows = figs["rows"]
    assert list(rows) == ["short", "normal", "phases-64", "phases-128"]
    assert all(r["status"] == "ok" and r["repeats"] >= 1 for r in rows.values())
    assert rows["short"]["repeats"] == 1  # min_window_s 0: one pass
    assert rows["normal"]["duration_s"] >= 2.0  # the CPU stand-in for the 10 s default
    assert all(r["prefill_repeats"] >= 1 for k, r in rows.items() if k.startswith("phases"))
    assert all(r["energy_valid"] is None for r in rows.values())  # no energy: not judged
    assert [c["to"] for c in figs["phases_checks"]] == ["128", "64"]
    assert "short window flagged" in proc.stdout
