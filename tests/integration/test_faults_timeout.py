"""A hung backend is bounded by measurement.job_timeout_s: the job becomes a failed row, the
worker is replaced, and the rest of the campaign runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.store.query import run_sql
from llem.store.store import Store


@pytest.mark.slow
def test_hang_becomes_a_failed_row(ray_gpus, tmp_path: Path) -> None:
    loaded = load_text("""
name: hang
models: [m]
backends: [noop]
grid:
  batch_size: [1, 2, 4]
  generate: [{}, {hang_s: 600}]
measurement: {warmup_requests: 0, thermal_gaps: false, job_timeout_s: 4}
dataset: {num_prompts: 2}
""")
    store = Store(tmp_path / "s")
    t0 = time.monotonic()
    summary = run_campaign(loaded, store=store, runtime_envs={})
    took = time.monotonic() - t0
    rows = run_sql(store, "SELECT status, error, (point_json LIKE '%hang_s%') AS hung "
                          "FROM runs ORDER BY ALL").to_pylist()
    assert summary.ok == 3 and summary.failed == 3, (summary, rows)
    for r in rows:
        if r["hung"]:
            assert r["status"] == "failed"
            assert r["error"].startswith("JobTimeout: timed out after 4 s "
                                         "(measurement.job_timeout_s)"), r
        else:
            assert r["status"] == "ok", r
    assert took < 120, took  # three 4 s timeouts, not three 600 s hangs
