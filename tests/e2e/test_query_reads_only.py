"""`llem query` reads: SQL that would write a file, a table, a database or an extension is
refused in one line before anything runs (`COPY runs TO '<store>/runs/x.parquet'` put a
file no llem writer made into the store); what reads still runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "store" / "runs").mkdir(parents=True)  # a store, empty
    return tmp_path / "store"


@pytest.mark.parametrize(("sql", "kind", "made"), [
    ("COPY (SELECT 1 AS x) TO '{t}/store/runs/x.parquet'", "the SQL is a COPY",
     "store/runs/x.parquet"),
    ("SELECT 1; COPY (SELECT 1) TO '{t}/y.csv'", "statement 2 of 2 is a COPY", "y.csv"),
    ("ATTACH '{t}/new.db' AS n", "is an ATTACH", "new.db"),
    ("EXPORT DATABASE '{t}/dump'", "is an EXPORT", "dump"),
    ("CREATE TABLE t AS SELECT 1", "is a CREATE", None),
])
def test_sql_that_writes_is_refused(store: Path, sql: str, kind: str, made: str | None) -> None:
    t = store.parent
    r = run_cli("query", sql.format(t=t), "--store", str(store))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert kind in r.stderr and "llem export" in r.stderr, r.stderr
    if made:
        assert not (t / made).exists()


def test_an_extension_is_refused(store: Path) -> None:
    r = run_cli("query", "INSTALL httpfs", "--store", str(store))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "is an INSTALL or LOAD" in r.stderr and "loads no DuckDB extension" in r.stderr


@pytest.mark.parametrize(("sql", "want"), [
    ("SELECT 41 + 1 AS x", [{"x": 42}]),
    ("WITH a AS (SELECT 2 AS x) FROM a", [{"x": 2}]),
    ("PIVOT (SELECT 'k' AS c, 3 AS v) ON c USING max(v)", [{"k": 3}]),
    ("VALUES (1, 'a')", [{"col0": 1, "col1": "a"}]),
    ("SELECT 1 AS x;", [{"x": 1}]),
    # an EXPLAIN (ANALYZE) of a read, a PIVOT DuckDB types MULTI (it makes enum types first)
    ("DESCRIBE PIVOT (SELECT 'k' AS c, 3 AS v) ON c USING max(v)", "k"),
    ("EXPLAIN ANALYZE SELECT 41 + 1", "analyzed_plan"),
    ("/* c */ EXPLAIN (FORMAT json) (SELECT 1)", "physical_plan"),
])
def test_sql_that_reads_runs(store: Path, sql: str, want: list[dict] | str) -> None:
    """want: the rows, or the first value of the first row."""
    r = run_cli("query", sql, "--store", str(store), "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows == want if isinstance(want, list) else next(iter(rows[0].values())) == want
