"""`llem query` runs any SQL DuckDB takes, and DuckDB reads any file: what it prints is
masked like every other text llem shows (read_text('/proc/self/environ') printed HF_TOKEN)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOKEN = "hf_PlantedTokenDoNotLeak0123456789abcd"


def test_query_output_masks_credentials(tmp_path: Path) -> None:
    (tmp_path / "store" / "runs").mkdir(parents=True)  # a store, empty
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "HF_TOKEN": TOKEN,
           "DB_PASSWORD": "plain-password-1"}
    llem = Path(sys.executable).with_name("llem")
    r = subprocess.run([str(llem), "query", "SELECT content, 'x' AS plain FROM "
                        "read_text('/proc/self/environ')", "--store", str(tmp_path / "store"),
                        "--format", "json"], capture_output=True, text=True, timeout=60,
                       env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert "HF_TOKEN=***" in r.stdout and "DB_PASSWORD=***" in r.stdout, r.stdout[:500]
    assert TOKEN not in r.stdout + r.stderr and "plain-password-1" not in r.stdout
    assert '"plain": "x"' in r.stdout
