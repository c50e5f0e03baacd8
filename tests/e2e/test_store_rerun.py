"""Measuring again: each driver session writes its own files (`<job>-c<cycle>-<session>`)
and stamps its rows with session_id, so a rerun keeps the earlier measurement readable
(runs_all, requests_all, samples_all) while runs, requests, samples, stats, compare and
report use the newest of each job and cycle; resume counts a job done if any session
stored it ok, a rerun session only what it stored itself."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from llem.store.compact import compact
from llem.store.doctor import inspect
from llem.store.query import run_sql
from llem.store.run_row import Result
from llem.store.schema import is_data_path
from llem.store.store import Store
from tests.support.cli import run_cli
from tests.support.faults import noop_results
from tests.support.paths import DATA


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_CACHE", str(tmp_path / "cache"))


def scaled(results: list[Result], factor: float, status: str = "ok") -> list[Result]:
    """The results as another measurement would give them: throughput x factor."""
    out = []
    for r in results:
        run = dataclasses.replace(r.run, tokens_per_s=(r.run.tokens_per_s or 0) * factor,
                                  status=status, error=None if status == "ok" else "boom")
        out.append(Result(run, [dict(q) for q in r.requests], list(r.samples)))
    return out


def q(store: Store, sql: str) -> list[dict]:
    return run_sql(store, sql).to_pylist()


def test_a_rerun_keeps_both_measurements_and_views_show_the_newest(tmp_path: Path) -> None:
    results = noop_results(2)  # 2 points x 2 cycles, 2 requests each
    first = Store(tmp_path / "s")
    for r in results:
        first.write_result(r)
    assert len(first.done("st")) == 4
    second = first.new_session(rerun=True)
    assert second.session_id > first.session_id and second.done("st") == set()
    for r in scaled(results, 10.0):
        second.write_result(r)
    assert len(second.done("st")) == 4  # what it stored itself
    store = Store(tmp_path / "s")
    assert q(store, "SELECT count(*) AS n FROM runs_all") == [{"n": 8}]
    assert q(store, "SELECT count(*) AS n FROM requests_all") == [{"n": 16}]
    rows = q(store, "SELECT job_id, cycle, session_id, tokens_per_s FROM runs")
    assert len(rows) == 4 and {r["session_id"] for r in rows} == {second.session_id}
    old = {r.run.key: r.run.tokens_per_s for r in results}
    assert all(r["tokens_per_s"] == pytest.approx(10 * old[(r["job_id"], r["cycle"])])
               for r in rows)
    # stats: the newest measurement of each job and cycle, 2 cycles each
    stats = q(store, "SELECT job_id, cycles, tokens_per_s_mean FROM stats")
    assert len(stats) == 2 and all(s["cycles"] == 2 for s in stats)
    for s in stats:
        want = [10 * v for (j, _), v in old.items() if j == s["job_id"]]
        assert s["tokens_per_s_mean"] == pytest.approx(sum(want) / 2)
    # requests of the measurement runs shows
    req = q(store, "SELECT DISTINCT session_id FROM requests")
    assert req == [{"session_id": second.session_id}]
    assert q(store, "SELECT count(*) AS n FROM requests") == [{"n": 8}]
    # both sessions' files, none overwritten; every name one llem writes
    names = sorted(p.name for p in (tmp_path / "s" / "runs").rglob("*.parquet"))
    assert len(names) == 8 and all(is_data_path(f"runs/campaign=st/{n}") for n in names)
    assert sum(first.session_id in n for n in names) == 4
    assert len(Store(tmp_path / "s").done("st")) == 4
    assert inspect(store).findings == []


def test_a_failed_rerun_does_not_hide_the_good_measurement(tmp_path: Path) -> None:
    """runs shows the newest ok measurement, else the newest: a job the view shows ok is
    one resume skips."""
    results = noop_results(1)
    first = Store(tmp_path / "s")
    first.write_result(results[0])
    again = first.new_session(rerun=True)
    again.write_result(scaled(results, 2.0, status="failed")[0])
    failed = first.new_session()
    failed.write_result(scaled(results, 3.0, status="failed")[1])  # only ever failed
    later = failed.new_session()
    later.write_result(scaled(results, 4.0)[1])  # resume: it ran again, ok
    store = Store(tmp_path / "s")
    rows = {r["job_id"]: r for r in q(store, "SELECT job_id, status, session_id FROM runs")}
    assert rows[results[0].run.job_id]["session_id"] == first.session_id
    assert rows[results[1].run.job_id]["session_id"] == later.session_id
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert q(store, "SELECT count(*) AS n FROM runs_all") == [{"n": 4}]
    assert store.done("st") == {r.run.key for r in results}


def test_old_layout_and_new_sessions_read_together(tmp_path: Path) -> None:
    """A store written before sessions (no session_id column, <job>-c<cycle>.parquet)
    reads as before; a job measured again there is newer than its old row."""
    old = DATA / "store_before_layout"
    shutil.copytree(old, tmp_path / "s")
    store = Store(tmp_path / "s")
    assert q(store, "SELECT count(*) AS n, count(session_id) AS s FROM runs") == \
        [{"n": 12, "s": 0}]
    assert store.read("runs").column("session_id").null_count == 12
    row = q(store, "SELECT * FROM runs ORDER BY job_id, cycle LIMIT 1")[0]
    row = {k: v for k, v in row.items() if v is not None}
    row["tokens_per_s"] = 1e6
    for k in ("started_at", "finished_at"):
        row[k] = row[k].timestamp()
    rerun = store.new_session(rerun=True)
    from llem.store.run_row import RunRow

    rerun.write_result(Result(RunRow(**{k: v for k, v in row.items()
                                        if not k.startswith("engine_")})))
    fresh = Store(tmp_path / "s")
    assert q(fresh, "SELECT count(*) AS n FROM runs_all") == [{"n": 13}]
    assert q(fresh, "SELECT count(*) AS n FROM runs") == [{"n": 12}]
    assert q(fresh, "SELECT count(*) AS n FROM requests") == [{"n": 44}]  # its 4 are old
    top = q(fresh, "SELECT tokens_per_s, session_id FROM runs WHERE job_id = "
            f"'{row['job_id']}' AND cycle = {row['cycle']}")
    assert top == [{"tokens_per_s": 1e6, "session_id": rerun.session_id}]
    assert len(fresh.done("before-move")) == 12


def test_compaction_keeps_every_measurement(tmp_path: Path) -> None:
    results = noop_results(2)
    first = Store(tmp_path / "s")
    for r in results:
        first.write_result(r)
    second = first.new_session(rerun=True)
    for r in scaled(results, 10.0):
        second.write_result(r)
    sql = ("SELECT (SELECT count(*) FROM runs_all) AS a, (SELECT count(*) FROM runs) AS n, "
           "(SELECT count(*) FROM requests) AS q, (SELECT round(sum(tokens_per_s_mean), 6) "
           "FROM stats) AS tps")
    before = q(Store(tmp_path / "s"), sql)
    compact(Store(tmp_path / "s"))
    runs = list((tmp_path / "s" / "runs").rglob("*.parquet"))
    assert [p.name.startswith("compact-") for p in runs] == [True]
    assert q(Store(tmp_path / "s"), sql) == before == [
        {"a": 8, "n": 4, "q": 8, "tps": before[0]["tps"]}]
    assert inspect(Store(tmp_path / "s")).findings == []


def test_query_cli_views(tmp_path: Path) -> None:
    results = noop_results(1)
    first = Store(tmp_path / "s")
    for r in results:
        first.write_result(r)
    for r in results:
        first.new_session(rerun=True).write_result(r)
    r = run_cli("query", "SELECT (SELECT count(*) FROM runs_all) AS a, (SELECT count(*) "
                "FROM runs) AS n, (SELECT count(*) FROM samples_all) AS s", "--store",
                str(tmp_path / "s"), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"a": 4, "n": 2, "s": 0}]


@pytest.mark.slow
def test_run_campaign_rerun_on_ray(ray_gpus, tmp_path: Path) -> None:
    """The real driver: a second run skips every job, a rerun measures each again in its
    own session; both stay queryable and the sessions rows say which was a rerun."""
    from llem import run_campaign
    from llem.config.load import load_text

    grid = load_text("""
name: again
models: [m]
backends: [noop]
cycles: 2
grid: {batch_size: [1, 2], max_new_tokens: 2}
measurement: {warmup_requests: 0, thermal_gaps: false}
""")
    first = run_campaign(grid, store=tmp_path / "s")
    assert (first.ok, first.skipped) == (4, 0)
    resumed = run_campaign(grid, store=tmp_path / "s")
    assert (resumed.ok, resumed.skipped) == (0, 4)
    again = run_campaign(grid, store=tmp_path / "s", rerun=True)
    assert (again.ok, again.skipped) == (4, 0)
    store = Store(tmp_path / "s")
    sessions = q(store, "SELECT session_id, rerun, ok FROM sessions ORDER BY session_id")
    assert [(s["rerun"], s["ok"]) for s in sessions] == [(False, 4), (False, 0), (True, 4)]
    assert q(store, "SELECT count(*) AS n FROM runs_all") == [{"n": 8}]
    assert q(store, "SELECT DISTINCT session_id FROM runs") == \
        [{"session_id": sessions[-1]["session_id"]}]
    assert q(store, "SELECT sum(cycles) AS c FROM stats") == [{"c": 4}]
    assert len(store.done("again")) == 4


def test_dry_run_says_what_a_rerun_does_with_done_jobs(tmp_path: Path) -> None:
    """The plan of `--rerun --dry-run` says the done jobs are measured again, not skipped."""
    store = Store(tmp_path / "s")
    for r in noop_results(2):
        store.write_result(r)
    grid = tmp_path / "st.yaml"
    grid.write_text("name: st\nmodels: [m]\nbackends: [noop]\ncycles: 2\n"
                    "grid: {batch_size: [1, 2], max_new_tokens: 4}\n")
    plain = run_cli("run", str(grid), "--dry-run", "--json", "--store", str(tmp_path / "s"))
    again = run_cli("run", str(grid), "--dry-run", "--json", "--rerun", "--store",
                    str(tmp_path / "s"))
    assert plain.returncode == again.returncode == 0, (plain.stderr, again.stderr)
    before, after = (json.loads(r.stdout)["store"] for r in (plain, again))
    assert (before["jobs_done"], before["jobs_to_run"], before["rerun"]) == (4, 0, False)
    assert (after["jobs_done"], after["jobs_to_run"], after["rerun"]) == (4, 4, True)
    assert "a run skips them" in before["text"] and "--rerun measures all 4" in after["text"]
