"""`llem query` prints what the SQL returned, as it comes: two columns of one name are two
values (a self-join's a.x and b.x showed b's value twice), a table stops at
MAX_TABLE_ROWS (100,000 rows took 26 s to draw, and every row was held as a Python object
first), CSV and JSON stream every row, and Ctrl-C mid-query is one line (DuckDB's
'Query interrupted' was a traceback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from llem.cli.query_cmd import MAX_TABLE_ROWS
from tests.support.cli import run_cli
from tests.support.paths import LLEM, ROOT

SELF_JOIN = ("WITH r AS (SELECT * FROM (VALUES (1, 10.5::DOUBLE), (2, 20.5::DOUBLE)) t(k, tok)) "
             "SELECT a.tok, b.tok FROM r a JOIN r b ON a.k = 1 AND b.k = 2")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "store" / "runs").mkdir(parents=True)  # a store, empty
    return tmp_path / "store"


def test_two_columns_of_one_name_are_two_values(store: Path) -> None:
    table = run_cli("query", SELF_JOIN, "--store", str(store))
    assert table.returncode == 0, table.stderr
    assert table.stdout.split()[-2:] == ["10.5", "20.5"], table.stdout
    csv = run_cli("query", SELF_JOIN, "--store", str(store), "--format", "csv")
    assert csv.stdout == "tok,tok\n10.5,20.5\n", csv.stdout
    js = run_cli("query", SELF_JOIN, "--store", str(store), "--format", "json")
    assert json.loads(js.stdout) == [{"tok": 10.5, "tok_2": 20.5}], js.stdout
    assert js.stdout == json.dumps([{"tok": 10.5, "tok_2": 20.5}], indent=1) + "\n"


def test_a_table_stops_at_its_cap_and_csv_and_json_hold_every_row(store: Path) -> None:
    n = MAX_TABLE_ROWS * 3 + 7
    sql = f"SELECT range AS i, 'x' || range AS s FROM range({n})"
    table = run_cli("query", sql, "--store", str(store))
    assert table.returncode == 0, table.stderr
    assert f"the first {MAX_TABLE_ROWS:,} rows are shown" in table.stderr
    assert "--format csv" in table.stderr and table.stderr.count("\n") == 1, table.stderr
    values = [line.split()[0] for line in table.stdout.splitlines()[1:]]
    assert values == [str(i) for i in range(MAX_TABLE_ROWS)]
    csv = run_cli("query", sql, "--store", str(store), "--format", "csv")
    assert csv.returncode == 0 and not csv.stderr, csv.stderr
    lines = csv.stdout.splitlines()
    assert len(lines) == n + 1 and lines[-1] == f"{n - 1},x{n - 1}"
    js = run_cli("query", sql, "--store", str(store), "--format", "json")
    rows = json.loads(js.stdout)
    assert [r["i"] for r in rows] == list(range(n)) and rows[-1]["s"] == f"x{n - 1}"
    assert js.stdout == json.dumps(rows, indent=1) + "\n"  # as before, in pieces
    small = run_cli("query", "SELECT 1 AS a", "--store", str(store))
    assert small.returncode == 0 and not small.stderr  # no cap line under the cap
    empty = run_cli("query", "SELECT 1 AS a WHERE false", "--store", str(store),
                    "--format", "json")
    assert empty.stdout == "[]\n"


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_an_error_while_rows_stream_is_one_line(store: Path, fmt: str) -> None:
    """DuckDB's errors reach the stream's reader as OSError: they are the query's failure,
    not 'cannot read store'."""
    sql = ("SELECT CASE WHEN range = 25000 THEN error('no such row') ELSE range END AS i "
           "FROM range(30000)")
    r = run_cli("query", sql, "--store", str(store), "--format", fmt)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: query failed: ") and "no such row" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_ctrl_c_during_a_query_is_one_line(store: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.Popen([*LLEM, "query", "SELECT count(*) FROM range(100000000000) a",
                          "--store", str(store)], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_query(p.pid)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert err == "interrupted\n", err
    assert out == ""


def _wait_for_query(pid: int, timeout_s: float = 120.0) -> None:
    """Until DuckDB has scanned for a while: 2 s of CPU time after the process loaded
    duckdb (counted in CPU, not wall time: what comes between, opening the store and its
    views, takes well under that, on a busy machine too)."""
    proc = psutil.Process(pid)
    deadline, start = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if start is None and any("duckdb" in m.path for m in proc.memory_maps()):
            start = _cpu_s(proc)
        if start is not None and _cpu_s(proc) > start + 2.0:
            return
        time.sleep(0.1)
    raise AssertionError("llem query never started its query")


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system
