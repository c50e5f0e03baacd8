"""Rows whose energy is invalid, in the readers: `llem compare`, `llem report` and the table
`llem run` prints leave them out of the energy figures (throughput and latency keep them),
show how many were left out, and --include-invalid restores them.

The store is a real campaign (tiny model, transformers, Ray, through the CLI) with the
readings NVML would have given filled in (tests.support.campaign_store); one configuration's
cycle is then judged invalid in its Parquet file, its J/token made 10x its other cycles'
mean, as a row with a too-short window would be. Every reader runs as a subprocess."""

from __future__ import annotations

import io
import json
import re
import statistics
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.campaign_store import CAMPAIGN, GRID, read_runs, run_grid, with_gpu_readings
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow

BAD = {"batch_size": 4, "streaming": False, "cycle": 1}  # the cycle judged invalid
REASON = "short_window: 12.0 periods < 50"


def _set(f: Path, values: dict[str, Any]) -> None:
    t = pq.read_table(f)
    for col, v in values.items():
        i = t.schema.get_field_index(col)
        t = t.set_column(i, t.schema.field(i), pa.array([v], t.schema.field(i).type))
    pq.write_table(t, f)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, llem_cache: Path) -> Path:
    """The campaign's store, every row judged valid but BAD, whose J/token is made 10x the
    mean of its configuration's other cycles (not 10x its own: the readings follow each
    cycle's timing, and a BAD cycle that ran fast on a busy machine came out under 3x)."""
    tmp = tmp_path_factory.mktemp("invalid")
    dst = with_gpu_readings(run_grid(tmp / "run", GRID), tmp / "gpu")
    files = {f: pq.read_table(f).to_pylist()[0]
             for f in sorted((dst / "runs").glob("*/*.parquet"))}
    others = statistics.mean(r["energy_per_token_j"] for r in _bad_config(list(files.values()))
                             if r["cycle"] != BAD["cycle"])
    for f, row in files.items():
        if all(row[k] == v for k, v in BAD.items()):
            _set(f, {"energy_valid": False, "energy_invalid_reasons": [REASON],
                     "energy_per_token_j": others * 10})
        else:
            _set(f, {"energy_valid": True, "energy_invalid_reasons": []})
    return dst


def _bad_config(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows
            if (r["batch_size"], r["streaming"]) == (BAD["batch_size"], BAD["streaming"])]


def _compare(store: Path, *extra: str) -> list[dict[str, Any]]:
    r = run_cli("compare", CAMPAIGN, "--store", str(store), "--by", "batch_size,streaming",
                "--format", "json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_compare_leaves_invalid_energy_out_and_counts_it(store: Path) -> None:
    runs = _bad_config(read_runs(store))
    valid = [r for r in runs if r["energy_valid"]]
    assert len(runs) == 3 and len(valid) == 2
    rows = _compare(store)
    bad = next(r for r in rows if (r["batch_size"], r["streaming"]) == (4, False))
    assert bad["invalid_n"] == 1 and bad["n"] == 3
    assert bad["energy_per_token_j_n"] == 2
    assert bad["energy_per_token_j_mean"] == pytest.approx(
        statistics.mean(r["energy_per_token_j"] for r in valid))
    # throughput is not an energy figure: every ok cycle counts
    assert bad["tokens_per_s_n"] == 3
    assert bad["tokens_per_s_mean"] == pytest.approx(
        statistics.mean(r["tokens_per_s"] for r in runs))
    assert all(r["invalid_n"] == 0 for r in rows if r is not bad)

    every = _compare(store, "--include-invalid")
    bad_all = next(r for r in every if (r["batch_size"], r["streaming"]) == (4, False))
    assert bad_all["invalid_n"] == 1 and bad_all["energy_per_token_j_n"] == 3
    assert bad_all["energy_per_token_j_mean"] == pytest.approx(
        statistics.mean(r["energy_per_token_j"] for r in runs))
    assert bad_all["energy_per_token_j_mean"] > 3 * bad["energy_per_token_j_mean"]

    table = run_cli("compare", CAMPAIGN, "--store", str(store), "--by", "batch_size,streaming")
    assert table.returncode == 0, table.stderr
    assert "energy invalid (left out)" in table.stdout
    assert "1 cycle with invalid energy left out of the energy figures" in table.stderr
    md = run_cli("compare", CAMPAIGN, "--store", str(store), "--by", "batch_size,streaming",
                 "--format", "markdown", "--include-invalid")
    assert md.returncode == 0, md.stderr
    head = md.stdout.splitlines()[0]
    assert "energy invalid (included)" in head
    line = next(ln for ln in md.stdout.splitlines() if ln.startswith("| 4 | false |"))
    assert line.split(" | ")[3] == "1"  # batch_size, streaming, n, then the count


def _page_data(html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="llem-data">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_shows_what_it_left_out(store: Path, tmp_path: Path) -> None:
    runs = _bad_config(read_runs(store))
    valid = [r for r in runs if r["energy_valid"]]
    out = tmp_path / "r.html"
    r = run_cli("report", CAMPAIGN, "--store", str(store), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "1 cycle with invalid energy left out" in r.stderr
    html = out.read_text()
    data = _page_data(html)
    assert data["invalid"] == 1 and data["include_invalid"] is False
    bad = next(c for c in data["configs"]
               if c["params"] == {"batch_size": 4, "streaming": False})
    assert bad["invalid_n"] == 1
    assert bad["energy_per_token_j_mean"] == pytest.approx(
        statistics.mean(r["energy_per_token_j"] for r in valid))
    assert bad["tokens_per_s_mean"] == pytest.approx(
        statistics.mean(r["tokens_per_s"] for r in runs))
    assert "<th class=\"num\">energy invalid</th>" in html
    assert "1 ok runs (in 1 of 4 configurations) have invalid energy" in html
    assert "runs with invalid energy</dt><dd>1 (left out of energy figures)" in html

    out2 = tmp_path / "all.html"
    r2 = run_cli("report", CAMPAIGN, "--store", str(store), "-o", str(out2),
                 "--include-invalid")
    assert r2.returncode == 0, r2.stderr
    data2 = _page_data(out2.read_text())
    bad2 = next(c for c in data2["configs"]
                if c["params"] == {"batch_size": 4, "streaming": False})
    assert data2["include_invalid"] is True
    assert bad2["energy_per_token_j_mean"] == pytest.approx(
        statistics.mean(r["energy_per_token_j"] for r in runs))
    assert "are included in the energy figures" in out2.read_text()


def test_stats_view_and_run_table_agree(store: Path) -> None:
    """The `stats` view (`llem query`) and the table `llem run` prints leave out the same
    cycle and count it."""
    from llem.cli.stats_table import print_results
    from llem.cli.term import Out
    from llem.store.store import Store

    q = run_cli("query", "SELECT cycles, invalid_cycles, energy_per_token_j_mean FROM stats "
                "WHERE job_id IN (SELECT job_id FROM runs WHERE batch_size = 4 AND NOT "
                "streaming)", "--store", str(store), "--format", "json")
    assert q.returncode == 0, q.stderr
    [bad] = json.loads(q.stdout)
    assert (bad["cycles"], bad["invalid_cycles"]) == (2, 1)
    compare = next(r for r in _compare(store) if (r["batch_size"], r["streaming"]) == (4, False))
    assert compare["energy_per_token_j_mean"] == pytest.approx(bad["energy_per_token_j_mean"])

    buf = io.StringIO()
    print_results(Out(file=buf, width=200), Store(store), CAMPAIGN, None, "")
    text = buf.getvalue()
    assert "3 (1 energy invalid)" in text
    assert "J/token leaves out 1 cycle whose energy is invalid" in text
