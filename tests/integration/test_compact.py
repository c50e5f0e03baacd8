"""`llem compact`: per-job files merged into one per table, every row read exactly once."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner
from llem.store.compact import Compaction, _compact_table, compact, finish
from llem.store.query import run_sql
from llem.store.run_row import Result
from llem.store.schema import is_data_path, to_table
from llem.store.store import Store
from tests.support.cli import run_cli
from tests.support.paths import ROOT

QUERIES = {
    "runs": "SELECT * FROM runs",
    "requests": "SELECT * EXCLUDE (token_times_s) FROM requests",
    "sessions": "SELECT * FROM sessions",
    "agg": "SELECT q.job_id, q.cycle, count(*) AS n, sum(q.output_tokens) AS toks, "
           "any_value(r.status) AS status FROM requests q JOIN runs r "
           "USING (campaign, job_id, cycle) GROUP BY ALL",
    "stats": "SELECT job_id, cycles, tokens_per_s_mean FROM stats",
}


def _results(noop: str, batches: list[int], cycles: int = 2) -> list[Result]:
    loaded = load_text(f"""
name: st
models: [m]
backends: [noop]
cycles: {cycles}
grid: {{batch_size: {batches}, max_new_tokens: 4}}
noop: {noop}
""")
    out = []
    for job in iter_jobs(loaded):
        runner = JobRunner("noop", {"model": "m", "dtype": "auto", "engine": dict(job.point.engine),
                                    "gpus": 0}, 0)
        out.append(runner.run(job.payload(), [f"p {i}" for i in range(5)]))
    return out


def _store(root: Path) -> Store:
    """5 ok job-cycles and 1 failed (two engine settings: runs files differ in engine_*
    columns), 5 requests each, and one session."""
    store = Store(root)
    results = _results("{token_s: 0.0}", [1, 2]) + _results("{request_s: 0.0}", [3], 2)
    results[-1].run = dataclasses.replace(results[-1].run, status="failed", error="boom")
    for r in results:
        store.write_result(r)
    store.write_session("st", {"jobs": 6, "ok": 5, "failed": 1})
    return store


def _snapshot(store: Store) -> dict[str, Any]:
    """Every view's rows (order-free), Store.read's and the resume set."""
    out: dict[str, Any] = {
        name: sorted(json.dumps(r, sort_keys=True, default=str)
                     for r in run_sql(store, sql).to_pylist())
        for name, sql in QUERIES.items()}
    for table in ("runs", "requests", "sessions"):
        t = store.read(table)
        out[f"read {table}"] = sorted(json.dumps({k: v for k, v in r.items() if v is not None},
                                                 sort_keys=True, default=str)
                                      for r in t.to_pylist())
    out["done"] = sorted(store.done("st"))
    return out


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet")
                  if ".staging" not in p.parts)


def test_compact_keeps_every_row_once(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    before = _snapshot(store)
    assert len(before["runs"]) == 6 and len(before["done"]) == 5
    r = run_cli("compact", str(tmp_path / "s"), "--campaign", "st")
    assert r.returncode == 0, r.stderr
    assert "compacted 11 files of 1 campaign in" in r.stdout  # 5 runs, 5 requests, 1 session
    assert "st sessions: 1 file (1 row) -> 1 compacted" in r.stdout
    files = _files(tmp_path / "s")
    # the failed job-cycle stays per-job (a rerun replaces it); the rest is one file a table
    per_job = [f for f in files if "compact-" not in f]
    assert sorted(f.split("/")[0] for f in per_job) == ["requests", "runs"]
    assert len(files) - len(per_job) == 3  # runs, requests, sessions
    assert all(is_data_path(f) for f in files)
    assert _snapshot(store) == before
    d = run_cli("doctor", str(tmp_path / "s"))
    assert d.returncode == 0 and "store is clean" in d.stdout, d.stdout
    again = run_cli("compact", str(tmp_path / "s"))
    assert again.returncode == 0 and again.stdout == "nothing to compact in 1 campaign: every " \
        "finished job's file is compacted already\n", again.stdout
    assert _files(tmp_path / "s") == files


def test_killed_after_rename_before_deletes(tmp_path: Path) -> None:
    """The compacted file in place, its sources not yet deleted (then half of them): every
    row still once; doctor names the leftovers; compact (or doctor --clean) removes them."""
    store = _store(tmp_path / "s")
    before = _snapshot(store)
    for table in ("runs", "requests", "samples", "sessions"):  # compact() without finish()
        _compact_table(store, "st", table, 1 << 30, Compaction("st", "t"))
    assert _snapshot(store) == before
    assert len(store.listing("runs").hidden) == 5
    for f in store.listing("runs").hidden[:3]:
        Path(f).unlink()
    assert _snapshot(store) == before
    d = run_cli("doctor", str(tmp_path / "s"), "--json")
    kinds = [json.loads(line).get("kind") for line in d.stdout.splitlines()[1:]]
    assert d.returncode == 1 and kinds == ["compacted"] * 8, d.stdout  # 2 runs, 5 + 1
    c = run_cli("doctor", str(tmp_path / "s"), "--clean")
    assert c.returncode == 0, c.stdout
    assert _snapshot(store) == before
    assert len([f for f in _files(tmp_path / "s") if "compact-" not in f]) == 2  # the failed


def test_compacting_again_merges_and_a_stop_in_between_is_safe(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    compact(store)
    for r in _results("{token_s: 0.0}", [4]):  # a later session adds jobs: per-job files
        store.write_result(r)
    before = _snapshot(store)
    assert len(before["done"]) == 7
    _compact_table(store, "st", "runs", 1 << 30, Compaction("st", "t"))  # lists the old one
    compacted = [f for f in _files(tmp_path / "s") if f.startswith("runs/") and "compact-" in f]
    assert len(compacted) == 2
    assert _snapshot(store) == before
    assert finish(store, "runs", "st") == 3  # 2 new per-job runs files, then the old file
    assert _snapshot(store) == before
    compact(store)
    files = _files(tmp_path / "s")
    assert len([f for f in files if "compact-" in f]) == 3
    assert _snapshot(store) == before


def test_rewritten_file_replaces_its_compacted_rows(tmp_path: Path) -> None:
    """A job-cycle written again after compaction (another identity): its new file is read,
    its old rows in the compacted file are not, as a rewrite replaces a per-job file."""
    store = _store(tmp_path / "s")
    compact(store)
    job = sorted(store.done("st"))[0]
    run = run_sql(store, f"SELECT * FROM runs WHERE job_id = '{job[0]}' AND cycle = {job[1]}"
                  ).to_pylist()[0]
    run = {k: v for k, v in run.items() if v is not None}
    run["tokens_per_s"] = 123.0
    run["started_at"] = run["started_at"].timestamp()
    run["finished_at"] = run["finished_at"].timestamp()
    store._write(to_table("runs", [run]), store.file_for("runs", "st", *job))
    sql = "SELECT job_id, cycle, tokens_per_s FROM runs WHERE status = 'ok' ORDER BY ALL"
    rows = run_sql(store, sql).to_pylist()
    assert len(rows) == 5 and len({(r["job_id"], r["cycle"]) for r in rows}) == 5
    assert [r["tokens_per_s"] for r in rows if (r["job_id"], r["cycle"]) == job] == [123.0]
    read = store.read("runs", columns=["job_id", "cycle", "tokens_per_s", "status"])
    assert sorted((r["job_id"], r["cycle"], r["tokens_per_s"]) for r in read.to_pylist()
                  if r["status"] == "ok") == [tuple(r.values()) for r in rows]
    assert len(store.done("st")) == 5
    before = _snapshot(store)
    compact(store)  # the stale compacted file is merged again, without the replaced row
    assert _snapshot(store) == before
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist()[0]["n"] == 6


def test_job_in_progress_stays_per_job(tmp_path: Path) -> None:
    """Safe beside a running campaign: a job whose runs row is not written yet is not taken,
    and reads whole once its done mark lands."""
    store = _store(tmp_path / "s")
    extra = _results("{token_s: 0.0}", [5], 1)[0]
    run = extra.run
    job_id, cycle = run.key
    store._write(to_table("requests", extra.requests),
                 store.file_for("requests", "st", job_id, cycle))
    compact(store)
    assert Path(store.file_for("requests", "st", job_id, 0)).exists()
    n = "SELECT count(*) AS n FROM requests"
    assert run_sql(store, n).to_pylist()[0]["n"] == 30  # 6 job-cycles with a runs row x 5
    store._write(to_table("runs", [run]), store.file_for("runs", "st", job_id, 0))
    assert run_sql(store, n).to_pylist()[0]["n"] == 35


def test_compacting_beside_a_writer_reads_each_job_whole_once(tmp_path: Path) -> None:
    """tests/support/fault_writer.py (the driver's write path: a 2000-row requests file, then the
    runs row) writes cycle after cycle while compaction runs again and again: at every
    check each finished cycle is read once, with all its requests."""
    root = tmp_path / "s"
    writer = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "fault_writer.py"),
                               str(root), "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    store = Store(root)
    # views list runs, then requests (whose done marks are listed later): a cycle finished
    # in between may show requests before its runs row, never a part or a double of either
    sql = ("SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(DISTINCT cycle) "
           "FROM runs) AS cycles, (SELECT count(*) FROM (SELECT cycle, count(*) AS n FROM "
           "requests GROUP BY cycle) WHERE n != 2000) AS partial, (SELECT count(*) FROM "
           "requests) AS requests")
    try:
        assert writer.stdout is not None and writer.stdout.readline()
        seen = []
        for _ in range(4):
            done = compact(store)
            got = run_sql(store, sql).to_pylist()[0]
            assert got["runs"] == got["cycles"] and got["partial"] == 0, got
            assert got["requests"] >= 2000 * got["runs"], got
            seen.append((got["runs"], sum(c.sources for c in done)))
    finally:
        writer.kill()
        writer.wait()
    assert seen[-1][0] > seen[0][0] and sum(n for _, n in seen) > 0, seen
    compact(store)
    got = run_sql(store, sql).to_pylist()[0]
    assert got["runs"] == got["cycles"] == len(store.done("writer")) and got["partial"] == 0
    assert got["requests"] == 2000 * got["runs"], got
    runs = root / "runs" / "campaign=writer"
    assert [f.name.startswith("compact-") for f in runs.iterdir()] == [True]


def test_kill_9_during_compaction_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """kill -9 as soon as a compacted file is in place (its sources being deleted), then at
    a few times into the work: after each, every row once; compact again finishes it."""
    store = _store(tmp_path / "s")
    for r in _results("{token_s: 0.0}", list(range(10, 70)), 1):
        store.write_result(r)
    before = _snapshot(store)
    code = ("import sys; from llem.store.store import Store; "
            "from llem.store.compact import compact; "
            "print('ready', flush=True); compact(Store(sys.argv[1]))")
    parts = [tmp_path / "s" / t / "campaign=st" for t in ("runs", "requests")]
    for when in ("renamed", 0.02, 0.1, 0.3):
        p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s")], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 60
        if when == "renamed":
            while not any(f.name.startswith("compact-") for d in parts for f in d.iterdir()):
                assert time.monotonic() < deadline and p.poll() is None
        else:
            time.sleep(float(when))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert _snapshot(store) == before, when
    assert run_cli("compact", str(tmp_path / "s")).returncode == 0
    assert _snapshot(store) == before
    d = run_cli("doctor", str(tmp_path / "s"), "--json")  # only the killed writes' temp files
    assert {json.loads(line).get("kind") for line in d.stdout.splitlines()[1:]} <= {"staging"}


def test_store_uri_through_pyarrow_filesystem(tmp_path: Path) -> None:
    """A file:// URI takes the object-store code paths (pyarrow filesystem moves, dataset
    views, no lock file): the same rows as the local path, before and after, twice."""
    _store(tmp_path / "s")
    uri = Store(f"file://{tmp_path / 's'}")
    assert not uri.local
    before = _snapshot(Store(tmp_path / "s"))
    assert _snapshot(uri) == before
    r = run_cli("compact", f"file://{tmp_path / 's'}")
    assert r.returncode == 0, r.stderr
    assert _snapshot(uri) == before == _snapshot(Store(tmp_path / "s"))
    for result in _results("{token_s: 0.0}", [4]):
        uri.write_result(result)
    before = _snapshot(uri)
    compact(uri)
    assert _snapshot(uri) == before == _snapshot(Store(tmp_path / "s"))
    assert not (tmp_path / "s" / ".compact.lock").exists()


@pytest.mark.parametrize("args, message", [
    (["{root}/nope"], "error: no store at {root}/nope: no runs, requests, samples or "
                      "sessions folder there; give the folder (or URI) `llem run` wrote to as "
                      "STORE"),  # compact takes no --store
    (["{root}/s", "--campaign", "other"], "error: no campaign 'other' in store {root}/s "
                                          "(campaigns: st)"),
])
def test_bad_input_one_line_nothing_written(tmp_path: Path, args: list[str],
                                            message: str) -> None:
    _store(tmp_path / "s")
    files = sorted(tmp_path.rglob("*"))
    r = run_cli("compact", *(a.format(root=tmp_path) for a in args))
    assert r.returncode == 2
    assert r.stderr.strip() == message.format(root=tmp_path)
    assert sorted(tmp_path.rglob("*")) == files


def test_compacted_names_are_data_paths() -> None:
    for table in ("runs", "requests", "samples", "sessions"):
        assert is_data_path(f"{table}/campaign=demo/compact-20261123T120000-0123abcd.parquet")
    for bad in ("runs/campaign=demo/compact-2026-0123abcd.parquet",
                "runs/campaign=demo/compact-20261123T120000-0123abcd.parquet.tmp",
                "other/campaign=demo/compact-20261123T120000-0123abcd.parquet"):
        assert not is_data_path(bad), bad



@pytest.mark.slow
def test_resume_after_compaction_runs_only_missing_jobs(ray_gpus, tmp_path: Path) -> None:
    """The real driver on a local Ray: compacted ok jobs are skipped, new ones land as
    per-job files beside the compacted ones, and compacting again merges them."""
    from llem import run_campaign

    grid = """
name: resume
models: [m]
backends: [noop]
cycles: 2
grid: {{batch_size: {batches}, max_new_tokens: 2}}
"""
    first = run_campaign(load_text(grid.format(batches=[1, 2])), store=Store(tmp_path))
    assert (first.ok, first.skipped) == (4, 0)
    compact(Store(tmp_path))
    runs = tmp_path / "runs" / "campaign=resume"
    assert [f.name.startswith("compact-") for f in runs.iterdir()] == [True]
    again = run_campaign(load_text(grid.format(batches=[1, 2, 3])), store=Store(tmp_path))
    assert (again.ok, again.skipped) == (2, 4)
    assert sorted(f.name.startswith("compact-") for f in runs.iterdir()) == [False, False, True]
    count = "SELECT count(*) AS n, count(DISTINCT (job_id, cycle)) AS jobs FROM runs"
    assert run_sql(Store(tmp_path), count).to_pylist() == [{"n": 6, "jobs": 6}]
    compact(Store(tmp_path))
    assert [f.name.startswith("compact-") for f in runs.iterdir()] == [True]
    assert run_sql(Store(tmp_path), count).to_pylist() == [{"n": 6, "jobs": 6}]
    assert len(Store(tmp_path).done("resume")) == 6


def test_query_retries_when_compaction_deleted_its_files(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Views made just before a compaction deleted the files they list: the query runs once
    more on fresh views instead of failing."""
    import llem.store.query

    store = _store(tmp_path / "s")
    before = _snapshot(store)
    connect, calls = llem.store.query.connect, []

    def connect_then_compact(st: Store):  # type: ignore[no-untyped-def]
        con = connect(st)
        if not calls:
            compact(st)
        calls.append(1)
        return con

    monkeypatch.setattr(llem.store.query, "connect", connect_then_compact)
    rows = run_sql(store, QUERIES["agg"]).to_pylist()
    assert len(calls) == 2
    assert sorted(json.dumps(r, sort_keys=True, default=str) for r in rows) == before["agg"]
