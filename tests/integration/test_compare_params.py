"""`llem compare` (the CLI as a subprocess) groups by what varies between a campaign's
stored points, whatever section swept it: an arrival rate swept in `measurement:`, a
server's rate levels (`server.rate`), a backend's engine argument only where it applies;
server mode adds goodput and SLO attainment (on a real server: test_server_mode.py); numbers
in one format."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.support.campaign_store import (
    ARRIVAL_RATES,
    ARRIVALS,
    ARRIVALS_GRID,
    SATURATED_LEVEL,
    SERVER,
    SERVER_CYCLES,
    read_runs,
    run_grid,
    server_levels,
    server_store,
)
from tests.support.cli import run_cli
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

BEFORE = ROOT / "tests" / "support" / "data" / "store_before_layout"  # noop + transformers


def llem(*args: str) -> str:
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def compare_json(store: Path, campaign: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(llem("compare", campaign, "--store", str(store), "--format", "json",
                           *args))


@pytest.fixture(scope="module")
def arrivals(llem_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_grid(tmp_path_factory.mktemp("arrivals"), ARRIVALS_GRID)


def test_each_arrival_rate_is_a_configuration(arrivals: Path) -> None:
    """measurement.request_rate: [4, 16, 64] is swept outside `grid:`; the three rates are
    three configurations of 3 cycles, not one of 9."""
    runs = read_runs(arrivals, ARRIVALS)
    out = compare_json(arrivals, ARRIVALS, "--metric", "tokens_per_s,ttft_p99")
    assert [r["request_rate"] for r in out] == list(ARRIVAL_RATES)
    for r in out:
        vals = [x["tokens_per_s"] for x in runs if x["request_rate"] == r["request_rate"]]
        assert r["n"] == 3 and r["tokens_per_s_mean"] == pytest.approx(statistics.fmean(vals))
    # the parameter's dotted path and its name group alike
    for by in ("measurement.request_rate", "request_rate"):
        again = compare_json(arrivals, ARRIVALS, "--by", by, "--metric", "tokens_per_s")
        assert [(r["request_rate"], r["n"]) for r in again] == \
            [(r["request_rate"], r["n"]) for r in out]
        assert [r["tokens_per_s_mean"] for r in again] == \
            pytest.approx([r["tokens_per_s_mean"] for r in out])
    md = llem("compare", ARRIVALS, "--store", str(arrivals), "--format", "markdown",
              "--metric", "tokens_per_s,ttft_p99").splitlines()
    assert md[0].startswith("| request_rate | n | tokens_per_s |")
    assert len(md) == 2 + len(ARRIVAL_RATES) and "baseline" in md[2]
    cells = [c.strip() for line in md[2:] for c in line.strip("|").split("|")]
    for c in cells:
        assert "e-0" not in c, c  # no 4.200e-04 beside 0.02197
        if " ± " in c:  # value and CI written alike: the same decimal places
            a, b = c.split(" ± ")
            assert len(a.partition(".")[2]) == len(b.partition(".")[2]), c


def test_labels_show_only_what_varies(tmp_path: Path) -> None:
    """A campaign of two backends where only noop has an engine argument (token_s): the
    engine argument is no parameter of its own and no label says engine={} or =None."""
    store = tmp_path / "store"
    shutil.copytree(BEFORE, store)
    table = llem("compare", "before-move", "--store", str(store), "--metric", "tokens_per_s")
    head = table.splitlines()[1].split()
    assert head[:4] == ["backend", "batch_size", "streaming", "n"]
    assert "engine" not in table and "None" not in table and "null" not in table
    rows = compare_json(store, "before-move", "--metric", "tokens_per_s")
    assert len(rows) == len({r["job_id"] for r in read_runs(store, "before-move")})
    assert all(set(r) >= {"backend", "batch_size", "streaming"} for r in rows)
    r = run_cli("compare", "before-move", "--store", str(store), "--by", "enigne.token_s")
    assert r.returncode == 2 and "did you mean 'engine.token_s'" in r.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server_store(tmp_path_factory.mktemp("server") / "store")


def test_server_levels_are_configurations_with_goodput(server: Path) -> None:
    levels = server_levels(server)
    out = compare_json(server, SERVER)
    assert [(r["max_new_tokens"], r["server.rate"]) for r in out] == sorted(levels)
    for r in out:
        lv = levels[(r["max_new_tokens"], r["server.rate"])]
        assert r["n"] == SERVER_CYCLES
        assert r["saturated_n"] == (SERVER_CYCLES if lv["saturated"] else 0)
        for m in ("goodput_requests_per_s", "slo_attainment", "arrival_rate_achieved",
                  "energy_per_token_j"):
            assert r[f"{m}_mean"] == pytest.approx(lv[m])
    text = llem("compare", SERVER, "--store", str(server))
    head = text.splitlines()[1].split()
    assert head[:4] == ["max_new_tokens", "server.rate", "n", "saturated"]
    assert "goodput_requests_per_s" in head and "slo_attainment" in head
    sat = [line.split() for line in text.splitlines()[2:] if " of " in line]
    assert [(int(s[0]), float(s[1]), " ".join(s[3:6])) for s in sat] == \
        [(*SATURATED_LEVEL, f"{SERVER_CYCLES} of {SERVER_CYCLES}")]
