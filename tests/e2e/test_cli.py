"""End to end: the CLI as a subprocess runs configs/demo.yaml, then queries the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow


def test_demo_runs_then_resumes(llem_cache: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = run_cli("run", "configs/demo.yaml", "--store", str(store), "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    q = run_cli("query", "SELECT count(*) AS n, count(*) FILTER (status = 'ok') AS ok, "
                "count(DISTINCT job_id) AS configs, max(model_loads) AS loads FROM runs "
                "WHERE campaign = 'demo'", "--store", str(store), "--format", "json")
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"n": 8, "ok": 8, "configs": 4, "loads": 1}]
    reqs = run_cli("query", "SELECT count(*) AS n FROM requests", "--store", str(store),
                   "--format", "csv")
    assert reqs.stdout.splitlines() == ["n", str(8 * 16)]

    again = run_cli("run", "configs/demo.yaml", "--store", str(store), "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped 8 jobs" in again.stderr
    q2 = run_cli("query", "SELECT count(*) AS n FROM runs", "--store", str(store),
                 "--format", "csv")
    assert q2.stdout.splitlines() == ["n", "8"]

    res = run_cli("results", "--store", str(store), "--format", "json")
    rows = json.loads(res.stdout)
    assert [(r["campaign"], r["ok"], r["failed"]) for r in rows] == [("demo", 8, 0)]


def test_query_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()  # a store nothing was written to yet
    r = run_cli("query", "SELECT nope FROM runs", "--store", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: query failed") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_query_from_sql_file(tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT 41 + 1 AS answer")
    (tmp_path / "runs").mkdir()  # a store nothing was written to yet
    r = run_cli("query", str(sql), "--store", str(tmp_path), "--format", "csv")
    assert r.stdout.splitlines() == ["answer", "42"]


def test_every_config_validates() -> None:
    from llem.config.grid import iter_jobs
    from llem.config.load import load_campaign

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        jobs = list(iter_jobs(load_campaign(path)))
        assert jobs, path
