"""The `stats` DuckDB view against hand values (the table `llem run` prints from the store:
tests/e2e/test_run_output.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem.measure.stats import cycle_stats
from llem.store.query import run_sql
from llem.store.run_row import Result, RunRow
from llem.store.store import Store


def _row(job_id: str, cycle: int, tps: float, jpt: float | None, batch: int = 4) -> Result:
    point = {"backend": "transformers", "model": "m", "batch_size": batch}
    return Result(RunRow(point_json=json.dumps(point), schema_version=1, campaign="s",
                         job_id=job_id, cycle=cycle,
                         status="ok", backend="transformers", model="m", batch_size=batch,
                         max_new_tokens=8, tokens_per_s=tps, energy_per_token_j=jpt,
                         started_at=1.0, finished_at=2.0))


def test_stats_view_matches_cycle_stats(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    tps, jpt = [10.0, 12.0, 14.0], [0.5, 0.52, 0.48]
    for c in range(3):
        store.write_result(_row("aaaaaaaa", c, tps[c], jpt[c]))
    store.write_result(_row("bbbbbbbb", 0, 7.0, None, batch=8))
    rows = {r["job_id"]: r for r in run_sql(store, "SELECT * FROM stats").to_pylist()}
    a, want = rows["aaaaaaaa"], cycle_stats(tps)
    assert a["cycles"] == 3
    assert a["tokens_per_s_mean"] == pytest.approx(want["mean"])
    assert a["tokens_per_s_std"] == pytest.approx(want["std"])
    assert a["tokens_per_s_ci95"] == pytest.approx(want["ci95"])  # 4.3027 * 2 / sqrt(3)
    assert a["tokens_per_s_cv"] == pytest.approx(want["cv"])
    assert a["energy_per_token_j_cv"] == pytest.approx(cycle_stats(jpt)["cv"])
    assert rows["bbbbbbbb"]["tokens_per_s_ci95"] is None  # one cycle: no spread



def test_configurations_sort_by_their_settings() -> None:
    from llem.cli.stats_table import sort_key

    def pt(rate: float, batch: int) -> str:
        return json.dumps({"backend": "transformers", "model": "/m/tiny", "batch_size": batch,
                           "dtype": "float32", "measurement": {"request_rate": rate}})
    points = {"a": pt(16.0, 4), "b": pt(4.0, 4), "c": pt(64.0, 4)}
    assert sorted(points, key=lambda j: sort_key(points[j])) == ["b", "a", "c"]
