"""`llem query`, round seven: values Python has no type for print as DuckDB writes them
(a date past 9999 was a traceback), writes hidden in EXPLAIN ANALYZE, a PIVOT or a setting
are refused (EXPLAIN ANALYZE COPY wrote its file), bytes and nested values are masked (a
token printed through read_blob), no extension is fetched, one statement runs (the first of
two was dropped unseen), and SQL that mentions a .sql file is SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import assert_one_error_line, run_cli

TOKEN = "hf_PlantedTokenDoNotLeak0123456789abcd"
# values arrow hands to Python that Python cannot hold, or held wrongly (24:00 read 00:00,
# the largest UHUGEINT -1, a BIT its raw bytes), alone and inside a list, a struct, a map
ODD = ("SELECT 'infinity'::TIMESTAMP AS ts, to_timestamp(253402300800) AS tz, "
       "DATE '10000-01-01' AS d, TIME '24:00:00' AS t, INTERVAL 1 MONTH AS i, "
       "340282366920938463463374607431768211455::UHUGEINT AS u, '0101'::BIT AS b, "
       "[DATE '10000-01-01', NULL] AS l, {'k': '-infinity'::DATE} AS s, "
       "MAP {'m': 'infinity'::TIMESTAMP} AS m")
ODD_ROW = {"ts": "infinity", "tz": "10000-01-01 00:00:00+00", "d": "10000-01-01",
           "t": "24:00:00", "i": "1 month", "u": "340282366920938463463374607431768211455",
           "b": "0101", "l": ["10000-01-01", None], "s": {"k": "-infinity"},
           "m": [["m", "infinity"]]}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "store" / "runs").mkdir(parents=True)  # a store, empty
    return tmp_path / "store"


def test_values_python_cannot_hold_print_as_duckdb_writes_them(store: Path) -> None:
    js = run_cli("query", ODD, "--store", str(store), "--format", "json")
    assert js.returncode == 0 and "Traceback" not in js.stderr, js.stderr[-2000:]
    assert json.loads(js.stdout) == [ODD_ROW]
    csv = run_cli("query", ODD, "--store", str(store), "--format", "csv")
    assert csv.returncode == 0 and not csv.stderr, csv.stderr[-2000:]
    assert csv.stdout.splitlines()[1].startswith(
        "infinity,10000-01-01 00:00:00+00,10000-01-01,24:00:00,1 month,"
        "340282366920938463463374607431768211455,0101,"), csv.stdout
    table = run_cli("query", ODD, "--store", str(store))
    assert table.returncode == 0 and not table.stderr, table.stderr[-2000:]
    assert "infinity" in table.stdout and "10000-01-01" in table.stdout, table.stdout


@pytest.mark.parametrize(("sql", "what", "made"), [
    ("EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{t}/evil.parquet'", "an EXPLAIN of a COPY",
     "evil.parquet"),
    ("EXPLAIN (FORMAT json, ANALYZE) COPY (SELECT 1) TO '{t}/e.csv'", "an EXPLAIN of a COPY",
     "e.csv"),
    ("/* c */ explain -- c\n analyze CREATE TABLE t AS SELECT 1", "an EXPLAIN of a CREATE",
     None),
    ("PRAGMA enable_profiling='json'; SET profiling_output='{t}/prof.json'; SELECT 1",
     "statement 1 of 3 is a SET", "prof.json"),
    ("SET threads = 1", "is a SET", None),
    ("PRAGMA show_tables", "is a PRAGMA", None),
    ("CHECKPOINT", "is a CALL", None),
    ("USE memory", "is a SET", None),
    ("UPDATE EXTENSIONS", "a statement llem query does not run", None),
    # a PIVOT without IN makes DuckDB type the statement MULTI, whatever holds it
    ("COPY (PIVOT (SELECT 'k' AS c, 3 AS v) ON c USING max(v)) TO '{t}/p.csv'",
     "a COPY statement that writes", "p.csv"),
    ("EXPLAIN ANALYZE COPY (PIVOT (SELECT 'k' AS c, 3 AS v) ON c USING max(v)) "
     "TO '{t}/q.csv'", "an EXPLAIN of a COPY", "q.csv"),
])
def test_statements_that_write_or_set_are_refused(store: Path, sql: str, what: str,
                                                  made: str | None) -> None:
    t = store.parent
    r = run_cli("query", sql.format(t=t), "--store", str(store))
    assert_one_error_line(r, what)
    assert "only reads" in r.stderr, r.stderr
    assert not made or not (t / made).exists()


def test_a_table_function_that_changes_a_setting_is_refused(store: Path) -> None:
    """The connection's settings are locked: enable_logging in a SELECT wrote a log folder."""
    log = store.parent / "log"
    r = run_cli("query", f"SELECT * FROM enable_logging(storage := 'file', storage_path := "
                         f"'{log}')", "--store", str(store))
    assert_one_error_line(r, "the configuration has been locked")
    assert not log.exists()


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_bytes_and_nested_values_are_masked(store: Path, fmt: str) -> None:
    sql = ("SELECT content AS b, [content] AS l, {'k': decode(content)} AS s, "
           "MAP {decode(content): 1} AS m FROM read_blob('/proc/self/environ')")
    r = run_cli("query", sql, "--store", str(store), "--format", fmt, env={"HF_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr[-2000:]
    assert TOKEN not in r.stdout + r.stderr
    if fmt == "json":
        row = json.loads(r.stdout)[0]
        assert "HF_TOKEN=***\\x00" in row["b"] and "HF_TOKEN=***\\x00" in row["l"][0]
        assert "HF_TOKEN=***\x00" in row["s"]["k"] and "HF_TOKEN=***\x00" in row["m"][0][0]


def test_control_characters_and_markup_in_a_table_are_escapes(store: Path) -> None:
    r = run_cli("query", "SELECT chr(27) || '[2Jred' || chr(0) AS \"h\x07\", '[/bold]' AS m, "
                "'\\x00\\x1b'::BLOB AS b", "--store", str(store))
    assert r.returncode == 0 and not r.stderr, r.stderr[-2000:]
    assert "\x1b" not in r.stdout and "\x00" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b[2Jred\\x00" in r.stdout and "[/bold]" in r.stdout, r.stdout
    assert "\\x00\\x1B" in r.stdout and "h\\x07" in r.stdout, r.stdout


def test_a_remote_file_fetches_no_extension_and_says_why(store: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    r = run_cli("query", "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
                "--store", str(store), env={"HOME": str(home)}, timeout=120)
    assert_one_error_line(r, "requires the extension httpfs to be loaded")
    assert "loads no DuckDB extension" in r.stderr, r.stderr
    assert not list(home.iterdir())


def test_several_statements_are_refused_and_the_help_says_so(store: Path) -> None:
    r = run_cli("query", "SELECT 1; SELECT 2", "--store", str(store))
    assert_one_error_line(r, "the SQL holds 2 statements, and llem query runs one")
    assert r.stdout == ""
    help_text = " ".join(run_cli("query", "--help").stdout.split())
    assert "one SELECT" in help_text and "several statements" in help_text, help_text


def test_sql_that_mentions_a_sql_file_is_sql(store: Path, tmp_path: Path) -> None:
    r = run_cli("query", "SELECT 1 AS x -- see q.sql", "--store", str(store),
                "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"x": 1}]
    spaced = tmp_path / "my queries" / "q.sql"
    spaced.parent.mkdir()
    spaced.write_text("SELECT 2 AS y")
    r = run_cli("query", str(spaced), "--store", str(store), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"y": 2}]
    assert_one_error_line(run_cli("query", "nothere.sql", "--store", str(store)),
                          "SQL file nothere.sql not found")
