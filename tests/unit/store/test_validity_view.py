"""The `stats` view leaves out rows whose energy cannot be trusted, says how many, groups by
the energy boundary, and `stats_all` keeps every ok row; stores written before the validity
columns still read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem.store.query import run_sql
from llem.store.run_row import Result, RunRow
from llem.store.store import Store
from tests.support.paths import DATA


def _row(job_id: str, cycle: int, jpt: float, **kw: Any) -> Result:
    return Result(RunRow(schema_version=1, campaign="v", job_id=job_id, cycle=cycle,
                         status="ok", backend="noop", model="m", batch_size=1,
                         max_new_tokens=8, energy_per_token_j=jpt, tokens_per_s=10.0,
                         started_at=1.0, finished_at=2.0, gpu_uuids=["GPU-1"], **kw))


def test_stats_leaves_out_invalid_rows_and_counts_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for r in (
        _row("aaaaaaaa", 0, 1.0, energy_valid=True, boundary="gpu"),
        _row("aaaaaaaa", 1, 9.0, energy_valid=False, boundary="gpu",
             energy_invalid_reasons=["short_window: 5.0 counter periods < 100"]),
        _row("aaaaaaaa", 2, 3.0, energy_valid=None, boundary="gpu"),  # not judged: kept
        # a neighbour on another GPU of the node: the GPU counter is still this job's alone
        _row("bbbbbbbb", 0, 2.0, energy_valid=True, boundary="gpu",
             neighbor_jobs=["cccccccc-c0"], neighbor_gpus=["GPU-2"]),
        # a neighbour on one of its GPUs: left out
        _row("bbbbbbbb", 1, 8.0, energy_valid=True, boundary="gpu",
             neighbor_jobs=["cccccccc-c1"], neighbor_gpus=["GPU-3,GPU-1"]),
        # boundary node: any neighbour on the node shares the RAPL socket
        _row("dddddddd", 0, 4.0, energy_valid=True, boundary="node",
             neighbor_jobs=["cccccccc-c0"], neighbor_gpus=["GPU-2"]),
        _row("dddddddd", 1, 5.0, energy_valid=True, boundary="node"),
        _row("eeeeeeee", 0, 6.0, energy_valid=False, boundary="gpu"),
    ):
        store.write_result(r)
    stats = {(r["job_id"], r["boundary"]): r
             for r in run_sql(store, "SELECT * FROM stats").to_pylist()}
    every = {(r["job_id"], r["boundary"]): r
             for r in run_sql(store, "SELECT * FROM stats_all").to_pylist()}
    a = stats[("aaaaaaaa", "gpu")]
    assert (a["cycles"], a["invalid_cycles"]) == (2, 1)
    assert a["energy_per_token_j_mean"] == pytest.approx(2.0)  # 1 and 3; not 9
    assert a["tokens_per_s_ci95"] is not None  # every metric over the same valid cycles
    assert every[("aaaaaaaa", "gpu")]["cycles"] == 3
    assert every[("aaaaaaaa", "gpu")]["energy_per_token_j_mean"] == pytest.approx(13 / 3)
    b = stats[("bbbbbbbb", "gpu")]
    assert (b["cycles"], b["invalid_cycles"], b["energy_per_token_j_mean"]) == (1, 1, 2.0)
    d = stats[("dddddddd", "node")]
    assert (d["cycles"], d["invalid_cycles"], d["energy_per_token_j_mean"]) == (1, 1, 5.0)
    e = stats[("eeeeeeee", "gpu")]  # every cycle invalid: shown, with nothing aggregated
    assert (e["cycles"], e["invalid_cycles"], e["energy_per_token_j_mean"]) == (0, 1, None)


def test_boundaries_never_mix(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.write_result(_row("aaaaaaaa", 0, 1.0, energy_valid=True, boundary="gpu"))
    store.write_result(_row("aaaaaaaa", 1, 2.0, energy_valid=True, boundary="node"))
    rows = run_sql(store, "SELECT boundary, cycles FROM stats ORDER BY boundary").to_pylist()
    assert rows == [{"boundary": "gpu", "cycles": 1}, {"boundary": "node", "cycles": 1}]


def test_a_store_without_the_validity_columns_reads() -> None:
    old = Store(DATA / "store_before_layout")
    rows = run_sql(old, "SELECT * FROM stats").to_pylist()
    assert len(rows) == 6 and all(r["invalid_cycles"] == 0 for r in rows)
    assert all(r["boundary"] is None for r in rows)
    assert len(run_sql(old, "SELECT * FROM stats_all").to_pylist()) == 6
