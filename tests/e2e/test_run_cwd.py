"""`llem run` wherever the user stands: Ray puts the driver's working folder first on every
worker's sys.path, so a `llem/` folder there (the parent of a clone) made every worker fail
to import llem (stored as a bare ActorDiedError). Workers import the installed llem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llem.store.query import run_sql
from llem.store.store import Store

GRID = """
name: shadow
models: [m]
backends: [noop]
grid: {batch_size: [1, 2], max_new_tokens: 2}
dataset: {num_prompts: 2}
measurement: {warmup_requests: 0, thermal_gaps: false}
"""


@pytest.mark.slow
def test_a_llem_folder_where_the_user_stands_does_not_shadow_llem(tmp_path: Path,
                                                                  llem_cache: Path) -> None:
    here = tmp_path / "parent-of-a-clone"
    (here / "llem").mkdir(parents=True)
    (here / "llem" / "__init__.py").write_text("raise ImportError('the wrong llem')\n")
    (here / "grid.yaml").write_text(GRID)
    llem = Path(sys.executable).parent / "llem"  # the installed console script, as users run it
    proc = subprocess.run([str(llem), "run", "grid.yaml", "--store", "store", "-q"], cwd=here,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 ok, 0 failed" in proc.stderr, proc.stderr[-3000:]
    rows = run_sql(Store(here / "store"), "SELECT status FROM runs").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"]
