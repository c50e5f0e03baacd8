"""A store written by llem before the layout moved (tests/support/data/store_before_layout,
written by commit 3961e1b from its grid.yaml) reads the same after it: every table, the
stats view, and resume, which proves the job ids (hashes of the points) did not change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llem import run_campaign
from llem.config.grid import iter_jobs
from llem.config.load import load_campaign
from llem.store.query import run_sql
from llem.store.store import Store
from tests.support.paths import DATA

OLD = DATA / "store_before_layout"
pytestmark = pytest.mark.slow


def test_old_store_reads_the_same(tmp_path: Path) -> None:
    store = Store(OLD)
    rows = run_sql(store, "SELECT backend, batch_size, streaming, count(*) AS n, "
                   "sum(output_tokens) AS tok FROM runs GROUP BY ALL ORDER BY ALL").to_pylist()
    assert [(r["backend"], r["batch_size"], r["streaming"], r["n"], r["tok"]) for r in rows] == [
        ("noop", 1, False, 2, 32), ("noop", 1, True, 2, 32), ("noop", 4, False, 2, 32),
        ("noop", 4, True, 2, 32), ("transformers", 1, False, 2, 32),
        ("transformers", 4, False, 2, 32)]
    counts = {t: run_sql(store, f"SELECT count(*) AS n FROM {t}").to_pylist()[0]["n"]
              for t in ("runs", "requests", "sessions")}
    assert counts == {"runs": 12, "requests": 48, "sessions": 1}
    assert len(run_sql(store, "SELECT * FROM stats").to_pylist()) == 6
    assert store.read("runs").num_rows == 12


def test_resume_of_an_old_store_skips_every_job(ray_gpus, llem_cache: Path,
                                                tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(OLD, copy)
    loaded = load_campaign(OLD / "grid.yaml")
    stored = {(r["job_id"], r["cycle"]) for r in
              Store(copy).read("runs", columns=["job_id", "cycle"]).to_pylist()}
    assert {j.key for j in iter_jobs(loaded)} == stored  # the same ids, computed today
    summary = run_campaign(loaded, store=Store(copy))
    assert (summary.total, summary.skipped, summary.ok, summary.failed) == (12, 12, 0, 0)
