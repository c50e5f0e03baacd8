"""`llem query`, `compare`, `export` on a real campaign's store, checked against values
computed here straight from the Parquet files with pyarrow (not through DuckDB)."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps

from tests.support.campaign_store import (
    CAMPAIGN,
    CONFIGS,
    CYCLES,
    read_runs,
    run_campaign,
    with_gpu_readings,
)
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def campaign(llem_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding grid.yaml and its store (one campaign run for this module)."""
    folder = tmp_path_factory.mktemp("reading")
    run_campaign(folder)
    return folder


@pytest.fixture(scope="module")
def store(campaign: Path) -> Path:
    return campaign / "store"


@pytest.fixture(scope="module")
def gpu_store(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_gpu_readings(store, tmp_path_factory.mktemp("gpu") / "store")


def llem(*args: str, cwd: Path | None = None) -> str:
    r = run_cli(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def expected(rows: list[dict[str, Any]], by: list[str], metric: str) -> dict[tuple, dict]:
    """mean, std, 95% CI half-width (Student t) per group of `by`, over status-ok rows."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if r["status"] == "ok" and r[metric] is not None:
            groups[tuple(r[b] for b in by)].append(r[metric])
    out = {}
    for key, vals in groups.items():
        n, sd = len(vals), statistics.stdev(vals)
        out[key] = {"n": n, "mean": statistics.fmean(vals), "std": sd,
                    "ci95": float(sps.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)}
    return out


def close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_campaign_is_what_the_grid_says(store: Path) -> None:
    rows = read_runs(store)
    assert len(rows) == CONFIGS * CYCLES and all(r["status"] == "ok" for r in rows)
    assert {(r["batch_size"], r["streaming"]) for r in rows} == \
        {(1, False), (1, True), (4, False), (4, True)}
    assert all(r["ttft_p50_s"] is not None for r in rows if r["streaming"])


def test_compare_values_and_ratios(store: Path) -> None:
    rows = read_runs(store)
    out = json.loads(llem("compare", CAMPAIGN, "--by", "batch_size,streaming", "--metric",
                          "tokens_per_s,latency_p50,ttft", "--baseline",
                          "batch_size=4,streaming=false", "--store", str(store),
                          "--format", "json"))
    assert len(out) == CONFIGS
    base = next(r for r in out if r["baseline"])
    assert (base["batch_size"], base["streaming"]) == (4, False)
    for metric in ("tokens_per_s", "latency_p50_s", "ttft_p50_s"):
        exp = expected(rows, ["batch_size", "streaming"], metric)
        for r in out:
            e = exp.get((r["batch_size"], r["streaming"]))
            if e is None:  # ttft of non-streaming runs: not measured, so null
                assert r[f"{metric}_mean"] is None and not r["streaming"]
                continue
            assert r["n"] == CYCLES and r[f"{metric}_n"] == e["n"]
            for stat in ("mean", "std", "ci95"):
                assert close(r[f"{metric}_{stat}"], e[stat]), (metric, stat, r, e)
            b = exp.get((4, False))
            if b is not None:
                assert close(r[f"{metric}_ratio"], e["mean"] / b["mean"])


def test_compare_coarser_grouping_pools_cycles_of_all_jobs(store: Path) -> None:
    exp = expected(read_runs(store), ["batch_size"], "tokens_per_s")
    out = list(csv.DictReader(io.StringIO(llem(
        "compare", CAMPAIGN, "--by", "batch_size", "--metric", "throughput", "--store",
        str(store), "--format", "csv"))))
    assert [int(r["batch_size"]) for r in out] == [1, 4]
    for r in out:
        e = exp[(int(r["batch_size"]),)]
        assert int(r["n"]) == 2 * CYCLES
        assert close(float(r["tokens_per_s_mean"]), e["mean"])
        assert close(float(r["tokens_per_s_ci95"]), e["ci95"])
    assert float(out[0]["tokens_per_s_ratio"]) == 1.0  # default baseline: the first row


def test_compare_j_per_token_on_gpu_readings(gpu_store: Path) -> None:
    exp = expected(read_runs(gpu_store), ["batch_size", "streaming"], "energy_per_token_j")
    out = json.loads(llem("compare", CAMPAIGN, "--metric", "j_per_token", "--store",
                          str(gpu_store), "--format", "json"))
    assert len(out) == CONFIGS  # default --by: the swept parameters
    for r in out:
        e = exp[(r["batch_size"], r["streaming"])]
        assert close(r["energy_per_token_j_mean"], e["mean"])
        assert close(r["energy_per_token_j_ci95"], e["ci95"])


def test_compare_markdown_and_table(store: Path) -> None:
    md = llem("compare", CAMPAIGN, "--store", str(store), "--format", "markdown",
              "--metric", "tokens_per_s").splitlines()
    assert md[0].startswith("| batch_size | streaming | n | tokens_per_s |")
    assert len(md) == 2 + CONFIGS and "baseline" in md[2] and " ± " in md[3]
    table = llem("compare", CAMPAIGN, "--store", str(store), "--metric", "tokens_per_s")
    assert "±" in table and "baseline" in table


def test_export_csv_and_jsonl_match_the_parquet_files(store: Path, tmp_path: Path) -> None:
    rows = {(r["job_id"], r["cycle"]): r for r in read_runs(store)}
    exported = list(csv.DictReader(io.StringIO(llem("export", CAMPAIGN, "--store",
                                                    str(store)))))
    assert len(exported) == len(rows)
    for e in exported:
        r = rows[(e["job_id"], int(e["cycle"]))]
        assert close(float(e["tokens_per_s"]), r["tokens_per_s"])
        assert int(e["batch_size"]) == r["batch_size"] and e["status"] == "ok"
        assert (e["ttft_p50_s"] == "") == (r["ttft_p50_s"] is None)
    out = tmp_path / "runs.jsonl"
    llem("export", CAMPAIGN, "--format", "jsonl", "-o", str(out), "--store", str(store))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(rows)
    for e in lines:
        r = rows[(e["job_id"], e["cycle"])]
        for col in ("latency_p50_s", "latency_p99_s", "ttft_p50_s", "duration_s"):
            assert e[col] == r[col] or close(e[col], r[col]), col
        assert e["output_tokens"] == r["output_tokens"]
    reqs = llem("export", CAMPAIGN, "--table", "requests", "--format", "jsonl", "--store",
                str(store)).splitlines()
    assert len(reqs) == sum(r["num_requests"] for r in rows.values())
    # -o - is stdout, as for Unix tools (it wrote a file named '-')
    dash = llem("export", CAMPAIGN, "--format", "jsonl", "-o", "-", "--store", str(store),
                cwd=tmp_path)
    assert len(dash.splitlines()) == len(rows) and not (tmp_path / "-").exists()
    r = run_cli("report", CAMPAIGN, "-o", "-", "--store", str(store), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "error: -o -: give a file name (this command " \
        "writes a file, and '-' would be a file named '-')\n", r.stderr


def test_export_writes_what_the_file_name_says(store: Path, tmp_path: Path) -> None:
    """-o's suffix picks the format (runs.parquet was CSV under a Parquet name); a suffix
    naming another format than the one written is refused, nothing written."""
    import pyarrow.parquet as pq

    rows = {(r["job_id"], r["cycle"]): r for r in read_runs(store)}
    llem("export", CAMPAIGN, "--table", "requests", "-o", str(tmp_path / "r.parquet"),
         "--store", str(store))
    reqs = pq.read_table(tmp_path / "r.parquet")
    assert reqs.num_rows == sum(r["num_requests"] for r in rows.values())
    llem("export", CAMPAIGN, "-o", str(tmp_path / "runs.json"), "--store", str(store))
    doc = json.loads((tmp_path / "runs.json").read_text())  # one JSON document, an array
    assert sorted((e["job_id"], e["cycle"]) for e in doc) == sorted(rows)
    for args, want in [
        (["-o", "x.json", "--format", "csv"],
         "error: -o x.json: a json file's name, and --format csv was given"),
        (["-o", "x.png"], "error: -o x.png: a png file's name, and this writes csv or jsonl "
                          "or json or parquet: name it .csv"),
    ]:
        r = run_cli("export", CAMPAIGN, *args, "--store", str(store), cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith(want), r.stderr
    r = run_cli("report", CAMPAIGN, "-o", "plots.pdf", "--store", str(store), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "error: -o plots.pdf: a pdf file's name, and " \
        "this writes html: name it .html (the plots as PNG: --png FOLDER)\n", r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet", "runs.json"]


def test_query_text_file_uri_and_stats_view(store: Path, tmp_path: Path) -> None:
    rows = read_runs(store)
    sql = "SELECT job_id, cycle, tokens_per_s FROM runs ORDER BY job_id, cycle"
    want = sorted((r["job_id"], r["cycle"], r["tokens_per_s"]) for r in rows)
    got = [(r["job_id"], r["cycle"], r["tokens_per_s"]) for r in
           json.loads(llem("query", sql, "--store", str(store), "--format", "json"))]
    assert got == want
    # an object-store style URI goes through pyarrow's filesystem layer, not DuckDB's glob
    via_uri = json.loads(llem("query", sql, "--store", store.as_uri(), "--format", "json"))
    assert [(r["job_id"], r["cycle"], r["tokens_per_s"]) for r in via_uri] == want
    f = tmp_path / "stats.sql"
    f.write_text("SELECT job_id, cycles, tokens_per_s_mean, tokens_per_s_ci95,\n"
                 "  tokens_per_s_cv FROM stats WHERE campaign = 'readtest'")
    exp = expected(rows, ["job_id"], "tokens_per_s")
    out = json.loads(llem("query", str(f), "--store", str(store), "--format", "json"))
    assert len(out) == CONFIGS
    for r in out:
        e = exp[(r["job_id"],)]
        assert r["cycles"] == CYCLES and close(r["tokens_per_s_mean"], e["mean"])
        assert close(r["tokens_per_s_ci95"], e["ci95"])
        assert close(r["tokens_per_s_cv"], e["std"] / e["mean"])


def test_default_store_is_the_grid_files(campaign: Path, tmp_path: Path) -> None:
    sql = "SELECT count(*) AS n FROM runs"
    assert llem("query", sql, "--format", "csv", cwd=campaign).split() == ["n", "12"]
    assert "readtest" in llem("results", "--format", "csv", cwd=campaign)
    # two grid files naming different stores: not obvious, so ./results, which is no
    # store here: one line saying where it looked and why, not an empty table
    for name, st in (("a.yaml", "one"), ("b.yaml", "two")):
        (tmp_path / name).write_text(f"name: x\nstore: {st}\nmodels: [m]\n")
    r = run_cli("query", sql, "--format", "csv", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.strip() == (
        f"error: no store at {tmp_path / 'results'} (the default ./results: the grid files "
        "here name different stores): no runs, requests, samples or sessions folder there; "
        "pass --store with the folder (or URI) `llem run` wrote to")
    r = run_cli("results", cwd=tmp_path.parent)  # run from another folder
    assert r.returncode == 2 and "error: no store at" in r.stderr


BAD = [
    (["compare", "nope"], "campaign 'nope' is not in store"),
    (["compare", "readtes"], "did you mean 'readtest'"),
    (["compare", CAMPAIGN, "--metric", "j_per_tokn"], "unknown metric 'j_per_tokn'"),
    (["compare", CAMPAIGN, "--metric", "backend"],  # "unknown", though the view has it
     "metric 'backend' is a column of the runs view but not a number"),
    (["compare", CAMPAIGN, "--metric", "started_at"],
     "metric 'started_at' is a column of the runs view but not a number"),
    (["compare", CAMPAIGN, "--by", "batchsize"], "did you mean 'batch_size'"),
    (["compare", CAMPAIGN, "--baseline", "batch_size=3"], "matches no configuration"),
    (["compare", CAMPAIGN, "--baseline", "dtype=x"], "not one of --by"),
    (["compare", CAMPAIGN, "--baseline", "batch_size"], "KEY=VALUE"),
    (["compare", CAMPAIGN, "--by", "batch_size", "--baseline", "batch_size=1,batch_size=4"],
     "--baseline names batch_size twice (batch_size=1 and batch_size=4)"),  # the last won
    (["query", "SELECT nope FROM runs"], "query failed"),
    (["query", "missing.sql"], "SQL file missing.sql not found"),
    (["export", "nope", "-o", "OUT"], "campaign 'nope' is not in store"),
    (["report", "nope", "-o", "OUT"], "campaign 'nope' is not in store"),
    (["report", CAMPAIGN, "-o", "OUT", "--job", "zzz"], "--job zzz matches 0 jobs"),
    (["report", CAMPAIGN, "-o", "OUT", "--job", ":1"],  # an internal DuckDB error
     "--job :1: give the job_id (or a unique prefix) before ':'"),
    (["report", CAMPAIGN, "-o", "OUT", "--png", "OUT"],  # the page, then a traceback
     "is -o's file: give the PNGs a folder of their own"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(store: Path, tmp_path: Path, args: list[str],
                                      message: str) -> None:
    out = tmp_path / ("out.csv" if args[0] == "export" else "out.html")  # named for it
    r = run_cli(*[str(out) if a == "OUT" else a for a in args], "--store", str(store),
                cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()


def test_bad_store_uri_is_one_line(tmp_path: Path) -> None:
    r = run_cli("compare", CAMPAIGN, "--store", "nosuchfs://bucket/x", cwd=tmp_path)
    assert r.returncode == 2 and "cannot open store 'nosuchfs://bucket/x'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_cycle_the_job_does_not_have_is_named(store: Path, tmp_path: Path) -> None:
    """`--job JOB:99` said "no power samples stored for it", as if the job had none."""
    job = read_runs(store)[0]["job_id"]
    r = run_cli("report", CAMPAIGN, "-o", str(tmp_path / "r.html"), "--job", f"{job}:99",
                "--store", str(store), cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip() == f"error: --job {job}:99: the job has no cycle 99 (its cycles: " \
        "0, 1, 2; 0 is the first)", r.stderr
    assert not (tmp_path / "r.html").exists()
