"""Greedy decoding (temperature 0) leaves the sampling settings unused (llem.config.modes.
GREEDY_UNUSED): a value of them that reaches greedy points only is refused at its line, and
where a value reaches sampling points too, the greedy ones reset it, so greedy decoding is
measured once, not once per top_p/top_k/seed label it never used."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.config.grid import iter_jobs
from tests.support.cli import assert_one_error_line, run_cli
from tests.support.grids import error_of, load


@pytest.mark.parametrize(("body", "where", "field"), [
    ("grid: {temperature: 0, top_p: 0.5}\n", "grid.yaml:4: 'grid.top_p'", "top_p"),
    ("grid: {top_k: 5}\n", "grid.yaml:4: 'grid.top_k'", "top_k"),
    ("grid:\n  seed: [1, 2]\n", "grid.yaml:5: 'grid.seed.0'", "seed"),
    ("grid: {preset: deterministic, seed: 3}\n", "grid.yaml:4: 'grid.seed'", "seed"),
    ("grid: {temperature: 0}\nexperiments: [{top_p: 0.8}]\n",
     "grid.yaml:5: 'experiments.0.top_p'", "top_p"),
])
def test_a_sampling_value_of_greedy_points_only_is_refused(body: str, where: str,
                                                            field: str) -> None:
    msg = error_of(body)
    assert msg.startswith(f"{where}: {field} is a sampling setting, and every point it "
                          "reaches decodes greedily (temperature 0)"), msg


def test_greedy_points_are_measured_once_beside_sampling_ones() -> None:
    loaded = load("grid: {temperature: [0, 0.7], top_p: [0.5, 0.9], seed: [1, 2]}\n")
    got = sorted((j.point.temperature, j.point.top_p, j.point.seed) for j in iter_jobs(loaded))
    assert got == [(0.0, 1.0, 0), (0.7, 0.5, 1), (0.7, 0.5, 2), (0.7, 0.9, 1), (0.7, 0.9, 2)]


def test_a_preset_s_sampling_settings_reset_at_temperature_0() -> None:
    """standard's top_p 0.9 and top_k 50 were written by no one: reset, not refused."""
    loaded = load("grid: {preset: [standard, deterministic], temperature: 0}\n")
    got = {(j.point.preset, j.point.top_p, j.point.top_k) for j in iter_jobs(loaded)}
    assert got == {("standard", 1.0, 0), ("deterministic", 1.0, 0)}
    creative = load("grid: {preset: [deterministic, creative], seed: 3}\n")
    assert sorted((j.point.preset or "", j.point.seed) for j in iter_jobs(creative)) == \
        [("creative", 3), ("deterministic", 0)]


def test_the_flag_is_named(tmp_path: Path) -> None:
    r = run_cli("run", "--model", "llem:tiny", "--top-p", "0.5", "--dry-run", cwd=tmp_path)
    assert_one_error_line(r, "error: --top-p 0.5: top_p is a sampling setting, and every "
                          "point it reaches decodes greedily")
    ok = run_cli("run", "--model", "llem:tiny", "--top-p", "0.5", "--temperature", "0.7",
                 "--dry-run", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
