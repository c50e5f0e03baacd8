"""`llem run` flags, as a user runs them: the CLI as a subprocess on the tiny model, results read
back from the Parquet store."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem.config.grid import iter_jobs
from llem.config.load import from_data, load_campaign
from llem.config.overrides import merge_overrides
from llem.config.yaml_source import SourceMap
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow


def runs(store: Path) -> list[dict]:
    rows = []
    for f in sorted((store / "runs").rglob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return sorted(rows, key=lambda r: (r["job_id"], r["cycle"]))


def test_flags_override_the_grid_file(llem_cache: Path, tmp_path: Path) -> None:
    """demo.yaml is 2 batch sizes x 2 output lengths x 2 cycles; flags collapse it to 1 job."""
    store = tmp_path / "s"
    r = run_cli("run", "configs/demo.yaml", "--batch-size", "4", "--max-new-tokens", "4",
                "-n", "4", "--cycles", "1", "--order", "shuffled", "--seed", "7", "--no-gaps",
                "--store", str(store))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "up to 1 job (1 point x 1 cycle, order shuffled (seed 7))" in \
        " ".join(r.stderr.split())
    (row,) = runs(store)
    assert (row["campaign"], row["batch_size"], row["max_new_tokens"], row["num_prompts"]) == \
        ("demo", 4, 4, 4)
    assert (row["cycle_order"], row["order_seed"], row["dtype"]) == ("shuffled", 7, "float32")
    assert json.loads(row["point_json"])["measurement"]["thermal_gaps"] is False
    assert row["num_requests"] == 4 and row["status"] == "ok"
    assert row["attn_implementation"] == "sdpa" and row["compiled"] is False


def test_one_line_run_without_a_file(llem_cache: Path, tmp_path: Path) -> None:
    store = tmp_path / "s"
    r = run_cli("run", "--model", "llem:tiny", "--backend", "transformers", "-n", "3",
                "--batch-size", "3", "--precision", "fp32", "--max-new-tokens", "2",
                "--cycles", "2", "--order", "shuffled", "--preset", "creative", "--quiet",
                "--store", str(store))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "up to" not in r.stderr and "done" not in r.stderr  # --quiet: no header, no bar
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]  # the summary line only
    assert r.stdout == "" and len(lines) == 1, r.stdout + r.stderr
    assert lines[0].startswith("campaign summary: 2 jobs: 2 ok, 0 failed")
    rows = runs(store)
    assert [row["cycle"] for row in rows] == [0, 1]
    seeds = {row["order_seed"] for row in rows}
    assert len(seeds) == 1 and None not in seeds  # drawn once, recorded with every row
    row = rows[0]
    assert (row["campaign"], row["model"], row["backend"], row["dtype"]) == \
        ("quick", "llem:tiny", "transformers", "float32")
    assert (row["batch_size"], row["num_prompts"], row["gpus_per_job"]) == (3, 3, 0)
    assert (row["preset"], row["temperature"], row["top_p"], row["repetition_penalty"]) == \
        ("creative", 1.0, 0.95, 1.1)


NOOP_FAILING = """\
name: fails
models: [none]
backends: [noop]
grid: {max_new_tokens: 2, generate.fail: boom}
dataset: {num_prompts: 2}
"""


def test_verbose_shows_tracebacks_only_when_asked(llem_cache: Path, tmp_path: Path) -> None:
    grid = tmp_path / "fails.yaml"
    grid.write_text(NOOP_FAILING)
    quiet = run_cli("run", str(grid), "--store", str(tmp_path / "a"))
    assert quiet.returncode == 1
    assert "noop backend asked to fail: boom" in quiet.stderr
    assert "Traceback" not in quiet.stderr and "--verbose" in quiet.stderr
    loud = run_cli("run", str(grid), "--store", str(tmp_path / "b"), "--verbose")
    assert loud.returncode == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert "RuntimeError: noop backend asked to fail: boom" in loud.stderr


@pytest.mark.parametrize("args, message", [
    (["--quiet", "--verbose", "--model", "llem:tiny"], "--quiet and --verbose cannot"),
    ([], "give a GRID file or --model"),
    (["--model", "llem:nope"], "error: --model 'llem:nope': unknown built-in model 'llem:nope'"),
    (["--model", "llem:tiny", "--backend", "tranformers"],
     "unknown backend 'tranformers' (did you mean 'transformers'?)"),
    (["--model", "llem:tiny", "--precision", "fp8"], "Invalid value for '--precision'"),
    (["--model", "llem:tiny", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["configs/demo.yaml", "--order", "random"], "Invalid value for '--order'"),
])
def test_bad_flags_are_one_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    r = run_cli("run", *args, "--store", str(tmp_path / "s"), timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "s").exists()


def test_overrides_replace_every_spelling_of_a_path() -> None:
    data = {"name": "x", "models": ["m"], "dataset": {"num_prompts": 8, "source": "builtin"},
            "grid": {"batch_size": [1, 8], "dataset": {"num_prompts": [1, 2]}}}
    out = merge_overrides(data, {"batch_size": 4, "dataset.num_prompts": 3, "cycles": 2,
                                 "seed": None})
    assert out == {"name": "x", "models": ["m"], "cycles": 2, "dataset": {"source": "builtin"},
                   "grid": {"batch_size": 4, "dataset.num_prompts": 3}}
    assert data["grid"]["batch_size"] == [1, 8]  # the input is not changed
    loaded = from_data(out, SourceMap("t"), base_dir=Path.cwd())
    assert [(j.point.batch_size, j.point.dataset.num_prompts) for j in iter_jobs(loaded)] == \
        [(4, 3), (4, 3)]


def test_cycle_orders_and_recorded_seed() -> None:
    def order(**over: object) -> list[tuple[int, int]]:
        loaded = load_campaign(Path("configs/demo.yaml"), {"cycles": 3, **over})
        jobs = list(iter_jobs(loaded))
        ids = sorted({j.job_id for j in jobs})
        assert {j.order_seed for j in jobs} == {over.get("seed")}
        return [(ids.index(j.job_id), j.cycle) for j in jobs]

    inter = order(order="interleaved")
    assert [c for _, c in inter] == [0] * 4 + [1] * 4 + [2] * 4
    seq = order(order="sequential")
    assert [c for _, c in seq] == [0, 1, 2] * 4
    shuffled = order(order="shuffled", seed=5)
    assert shuffled == order(order="shuffled", seed=5)  # the seed reproduces the order
    assert shuffled != order(order="shuffled", seed=6)
    assert sorted(shuffled) == sorted(inter)


def test_flags_reach_every_point_without_running(tmp_path: Path) -> None:
    """The flag -> parameter path table of load_for_run, checked on the resolved points."""
    from llem.cli.run_cmd import load_for_run

    flags = {"model": "llem:tiny", "backend": "noop", "gpus": 0, "gap_max_s": 5.0,
             "no_gaps": False, "temperature": 0.3, "top_p": 0.8, "top_k": 7,
             "repetition_penalty": 1.2, "min_new_tokens": 2, "sampling_seed": 4,
             "max_new_tokens": 9, "preset": "standard", "num_prompts": 3}
    (job,) = list(iter_jobs(load_for_run(None, flags)))
    p = job.point
    assert p.measurement.gap_max_s == 5.0 and p.measurement.thermal_gaps is True
    assert (p.temperature, p.top_p, p.top_k, p.repetition_penalty, p.min_new_tokens,
            p.seed, p.max_new_tokens, p.dataset.num_prompts) == (0.3, 0.8, 7, 1.2, 2, 4, 9, 3)
    (job,) = list(iter_jobs(load_for_run(None, {**flags, "no_gaps": True})))
    assert job.point.measurement.thermal_gaps is False
