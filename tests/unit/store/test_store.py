"""The Parquet store: fixed schemas, atomic writes, resume set, DuckDB views."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner
from llem.store.query import run_sql
from llem.store.run_row import Result
from llem.store.schema import SCHEMAS, check_schema_versions, to_table
from llem.store.store import Store


def _results(n_cycles: int = 2, **engine: float) -> list[Result]:
    loaded = load_text(f"""
name: st
models: [m]
backends: [noop]
cycles: {n_cycles}
grid: {{batch_size: [1, 2], max_new_tokens: 4}}
noop: {{token_s: 0.0}}
""")
    runner = JobRunner("noop", {"model": "m", "dtype": "auto", "engine": {"token_s": 0.0},
                                "gpus": 0}, 0)
    return [runner.run(j.payload(), ["a b", "c d e"]) for j in iter_jobs(loaded)]


def test_write_and_read_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    results = _results()
    for r in results:
        store.write_result(r)
    assert len(store.files("runs")) == 4
    assert len(store.files("requests")) == 4
    assert store.done("st") == {r.run.key for r in results}
    t = pq.read_table(store.files("runs")[0])
    for field in SCHEMAS["runs"]:
        assert t.schema.field(field.name).type == field.type, field.name
    assert t.column("engine_token_s").to_pylist() == [0.0]
    # nothing left in staging, nothing hidden next to the data files
    assert os.listdir(tmp_path / "s" / ".staging") == []
    rows = run_sql(store, "SELECT count(*) AS n, sum(num_requests) AS reqs FROM runs").to_pylist()
    assert rows == [{"n": 4, "reqs": 8}]
    n_req = run_sql(store, "SELECT count(*) AS n FROM requests").to_pylist()[0]["n"]
    assert n_req == 8


def test_rewrite_same_job_keeps_one_row(tmp_path: Path) -> None:
    store = Store(tmp_path)
    r = _results(1)[0]
    store.write_result(r)
    store.write_result(r)
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist()[0]["n"] == 1


def test_failed_rows_not_done(tmp_path: Path) -> None:
    store = Store(tmp_path)
    r = _results(1)[0]
    r.run = dataclasses.replace(r.run, status="failed", error="boom")
    store.write_result(r)
    assert store.done("st") == set()


def test_all_null_column_stays_typed(tmp_path: Path) -> None:
    t = to_table("runs", [_results(1)[0].run])
    assert t.schema.field("energy_j").type == SCHEMAS["runs"].field("energy_j").type
    assert t.column("energy_j").null_count == 1


def test_unknown_column_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not in the runs schema"):
        to_table("runs", [{"bogus": 1}])


def test_stray_files_are_not_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_result(_results(1)[0])
    (tmp_path / ".staging" / "abc.tmp").write_bytes(b"PAR1 partial")
    (tmp_path / "runs" / "campaign=st" / "x.parquet.tmp").write_bytes(b"junk")
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist()[0]["n"] == 1


def test_empty_store_queries(tmp_path: Path) -> None:
    store = Store(tmp_path / "none")
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 0}]
    assert store.campaigns() == []


def test_schema_version_messages() -> None:
    assert check_schema_versions([1, 1]) is None
    assert "newer" in (check_schema_versions([99]) or "")
    assert "older" in (check_schema_versions([0]) or "")


def test_stats_view_t_interval(tmp_path: Path) -> None:
    """stats: mean, std, 95% CI (t, df = n-1) and CV per configuration across cycles."""
    import statistics

    from scipy import stats as sps

    store = Store(tmp_path)
    results = _results(3)
    for r in results:
        store.write_result(r)
    rows = run_sql(store, "SELECT job_id, cycles, tokens_per_s_mean, tokens_per_s_std, "
                   "tokens_per_s_ci95, tokens_per_s_cv FROM stats ORDER BY job_id").to_pylist()
    assert len(rows) == 2
    for row in rows:
        vals = [r.run.tokens_per_s for r in results if r.run.job_id == row["job_id"]]
        assert row["cycles"] == 3
        assert row["tokens_per_s_mean"] == pytest.approx(statistics.mean(vals))
        sd = statistics.stdev(vals)
        assert row["tokens_per_s_std"] == pytest.approx(sd)
        assert row["tokens_per_s_ci95"] == pytest.approx(sps.t.ppf(0.975, 2) * sd / 3 ** 0.5)
        assert row["tokens_per_s_cv"] == pytest.approx(sd / statistics.mean(vals))
