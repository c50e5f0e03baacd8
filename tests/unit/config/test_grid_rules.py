"""Rules over a whole grid file: a parameter is written once, rules across fields hold on the
combinations the file makes (whatever the order, include/exclude applied), a value listed
twice is one choice, every input has a size or time bound, and every independent mistake is
reported at once."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llem.config.axes import Axis
from llem.config.grid import combinations, count_points, iter_jobs
from llem.config.load import load_campaign, load_text
from llem.config.loaded import Loaded
from llem.errors import MAX_ERRORS, ConfigError, ConfigErrors
from tests.support.grids import HEAD, error_of, load


def pairs(loaded: Loaded, *fields: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(getattr(j.point, f) for f in fields) for j in iter_jobs(loaded))


# --- a parameter is written once -----------------------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  generate.x: 8\n  generate:\n    x: 16\n",
     ":7: 'grid.generate.x': 'generate.x' is also set on line 5"),
    ("grid:\n  generate:\n    x: 16\n  generate.x: 8\n",
     ":7: 'grid.generate.x': 'generate.x' is also set on line 6"),
    ("noop:\n  a: 1\ngrid:\n  noop.a: 2\n", ":7: 'grid.noop.a': 'noop.a' is also set on line 5"),
    ("measurement:\n  warmup_cv: 0.1\ngrid:\n  measurement:\n    warmup_cv: 0.2\n",
     "'measurement.warmup_cv' is also set on line 5"),
    ("dataset: {num_prompts: 8}\ngrid:\n  dataset.num_prompts: [4, 8]\n",
     "'dataset.num_prompts' is also set on line 4"),
    ("grid:\n  variants:\n    - {generate.a: 3, generate.a.x: 1}\n", "reaches inside"),
    ("grid:\n  variants:\n    - {generate.a: 1, generate: {a: 2}}\n",
     "'generate.a' is also set on line 6"),
    ("grid:\n  measurement:\n    - {sample_hz: 5, measurement.sample_hz: 6}\n",
     "'measurement.sample_hz' is also set on line 6"),
    ("grid:\n  generate:\n    - {a.b: 1, a: {b: 2}}\n", "'generate.a.b' is also set on line 6"),
])
def test_a_parameter_written_twice_is_refused(body: str, want: str) -> None:
    msg = error_of(body)
    assert want in msg, msg
    assert "keep one of them" in msg or "reaches inside" in msg or "unknown" in msg, msg


def test_variants_and_groups_may_override_a_fixed_value() -> None:
    loaded = load("grid:\n  batch_size: 4\n  variants: [{}, {batch_size: 8}]\n")
    assert pairs(loaded, "batch_size") == [(4,), (8,)]
    loaded = load("measurement: {sample_hz: 5}\ngrid:\n  measurement: [{}, {sample_hz: 6}]\n")
    assert sorted(j.point.measurement.sample_hz for j in iter_jobs(loaded)) == [5.0, 6.0]


def test_command_line_flags_replace_both_spellings() -> None:
    loaded = load_campaign_with({"batch_size": 2},
                                "grid:\n  batch_size: 8\nmeasurement: {warmup_cv: 0.1}\n")
    assert pairs(loaded, "batch_size") == [(2,)]


def load_campaign_with(overrides: dict[str, Any], body: str) -> Loaded:
    from llem.config.load import from_data
    from llem.config.yaml_source import parse_yaml

    data, smap = parse_yaml(HEAD + body, "grid.yaml")
    return from_data(data, smap, Path.cwd(), overrides=overrides)


# --- rules across fields: on the file's own combinations -------------------------------------


@pytest.mark.parametrize("body", [
    "grid:\n  max_new_tokens: 200\n  min_new_tokens: [0, 100]\n",
    "grid:\n  min_new_tokens: [0, 100]\n  max_new_tokens: 200\n",
    "grid:\n  min_new_tokens: 100\n  max_new_tokens: 200\n",
    "grid:\n  max_new_tokens: 200\n  variants: [{min_new_tokens: 150}, {}]\n",
    "grid:\n  variants: [{min_new_tokens: 150}, {}]\n  max_new_tokens: 200\n",
    "grid:\n  input_policy: [truncate, pad]\n  max_input_tokens: 16\n",
])
def test_alternatives_are_checked_against_the_files_own_values(body: str) -> None:
    assert len(list(iter_jobs(load(body)))) == 2 if "[" in body else 1


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  max_new_tokens: [8, 128]\n  min_new_tokens: [0, 50]\n",
     ":6: 'grid.min_new_tokens.1': min_new_tokens (50) is over max_new_tokens (8)"),
    ("grid:\n  min_new_tokens: [0, 50]\n  max_new_tokens: [8, 128]\n",
     "min_new_tokens (50) is over max_new_tokens (8)"),
    ("grid:\n  min_new_tokens: 100\n", "min_new_tokens (100) is over max_new_tokens (64)"),
    ("grid:\n  variants: [{input_policy: pad}, {max_input_tokens: 8}]\n",
     ":5: 'grid.variants.0': input_policy: pad needs max_input_tokens"),
])
def test_a_rule_broken_between_axes_is_located(body: str, want: str) -> None:
    assert want in error_of(body)


def test_rules_across_fields_respect_include_and_exclude() -> None:
    body = "grid:\n  max_new_tokens: [8, 128]\n  min_new_tokens: [0, 50]\n"
    loaded = load(body + "exclude:\n  - {max_new_tokens: 8, min_new_tokens: 50}\n")
    assert pairs(loaded, "max_new_tokens", "min_new_tokens") == [(8, 0), (128, 0), (128, 50)]
    loaded = load(body + "include:\n  - {max_new_tokens: 128}\n")
    assert pairs(loaded, "max_new_tokens", "min_new_tokens") == [(128, 0), (128, 50)]
    assert "is over max_new_tokens (8)" in error_of(body + "include:\n  - {min_new_tokens: 50}\n")


def test_no_validation_error_escapes_the_expansion() -> None:
    loaded = load("grid:\n  max_new_tokens: [8, 16]\n")
    ax = loaded.axes[-1]
    # a combination the load checks never saw (an API user building axes by hand)
    loaded.axes.append(Axis("min_new_tokens", ({"min_new_tokens": 0}, {"min_new_tokens": 12}),
                            (("grid", "max_new_tokens", 0), ("grid", "max_new_tokens", 1))))
    assert ax.key == "max_new_tokens"
    with pytest.raises(ConfigError, match=r"grid\.yaml:5: .*min_new_tokens \(12\) is over"):
        list(iter_jobs(loaded))


def test_an_unknown_preset_is_a_located_error() -> None:
    assert ":5: 'grid.preset.1': unknown preset 'sharp'" in \
        error_of("grid:\n  preset: [standard, sharp]\n")


# --- a value listed twice is one choice -----------------------------------------------------


@pytest.mark.parametrize(("head", "body", "n"), [
    ("name: t\nmodels: [llem:tiny]\nbackends: [noop, noop]\n", "", 1),
    ("name: t\nmodels: [a, b, a]\nbackends: [noop]\n", "", 2),
    (HEAD, "grid:\n  batch_size: [1, 1, 2]\n", 2),
    (HEAD, "grid:\n  temperature: [1, 1.0]\n", 1),
    (HEAD, "grid:\n  measurement: [{sample_hz: 5}, {sample_hz: 5}]\n", 1),
    (HEAD, "grid:\n  variants: [{}, {}]\n", 1),
])
def test_a_value_listed_twice_is_one_job_per_point(head: str, body: str, n: int) -> None:
    loaded = load(body, head)
    jobs = list(iter_jobs(loaded))
    assert count_points(loaded) == n == len(jobs) == len({j.key for j in jobs})
    assert len(loaded.campaign.backends) == len(set(loaded.campaign.backends))


def test_true_and_one_stay_apart() -> None:
    loaded = load("grid:\n  generate.x: [1, true]\n")
    assert len(list(iter_jobs(loaded))) == 2


def test_local_model_paths_listed_twice_are_one(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    loaded = load_text(f"name: t\nmodels: [./m, ./m/../m, {tmp_path / 'm'}]\nbackends: [noop]\n",
                       "g.yaml", base_dir=tmp_path)
    assert loaded.campaign.models == [str(tmp_path / "m")]


# --- every input is bounded ------------------------------------------------------------------


def _loads_within(path: Path, seconds: float) -> BaseException | None:
    out: list[BaseException | None] = [None]

    def go() -> None:
        try:
            load_campaign(path)
        except BaseException as exc:
            out[0] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"loading {path} blocked"
    return out[0]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "grid.yaml"
    os.mkfifo(fifo)
    err = _loads_within(fifo, 5)
    assert isinstance(err, ConfigError) and "is not a regular file" in str(err), err


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/stdin"])
def test_devices_are_refused(device: str) -> None:
    if not Path(device).exists() or stat.S_ISREG(Path(device).stat().st_mode):
        pytest.skip(f"{device} is not a device here")
    err = _loads_within(Path(device), 5)
    assert isinstance(err, ConfigError) and "not a regular file" in str(err), err


def test_a_symlink_to_a_grid_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text(HEAD)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    assert load_campaign(tmp_path / "link.yaml").campaign.name == "t"


def test_a_huge_grid_is_refused_by_counting_and_max_points_is_bounded() -> None:
    axis = list(range(1, 1001))
    t0 = time.perf_counter()
    msg = error_of(f"max_points: 10000000\ngrid:\n  seed: {axis}\n  top_k: {axis}\n"
                   f"  max_new_tokens: {axis}\n")
    assert "the grid has 1000000000 points, over max_points=10000000" in msg
    assert "is the most a grid may have" in msg and "raise max_points" not in msg
    assert time.perf_counter() - t0 < 2
    assert "must be <= 10000000" in error_of("max_points: 1000000000000\n")


def test_checks_of_a_large_grid_do_not_walk_its_points() -> None:
    body = (f"max_points: 10000000\ngrid:\n  temperature: 0.5\n"
            f"  batch_size: {list(range(1, 101))}\n"
            f"  max_new_tokens: {list(range(1, 101))}\n  seed: {list(range(500))}\n"
            "  min_new_tokens: [0, 1]\n"
            "include:\n  - {seed: 499, batch_size: 100}\nexclude:\n  - {max_new_tokens: 3}\n")
    t0 = time.perf_counter()
    loaded = load(body)
    assert time.perf_counter() - t0 < 3
    assert count_points(loaded) == 10_000_000  # an upper bound: counted, not enumerated
    kept = [v["seed"] for v, _ in combinations(loaded, lambda p: p == "seed")]
    assert kept == [499]
    assert time.perf_counter() - t0 < 3


def test_combinations_apply_the_rules_exactly() -> None:
    loaded = load("grid:\n  temperature: 0.5\n  batch_size: [1, 2]\n  max_new_tokens: [8, 16]\n"
                  "  seed: [0, 1]\n"
                  "exclude:\n  - {batch_size: 1, seed: 0}\n  - {batch_size: 1, seed: 1}\n")
    got = sorted(v["max_new_tokens"] for v, _ in combinations(
        loaded, lambda p: p == "max_new_tokens"))
    assert got == [8, 16]
    got = sorted(v["batch_size"] for v, _ in combinations(loaded, lambda p: p == "batch_size"))
    assert got == [2]  # batch_size 1 is excluded with every seed


# --- every independent mistake at once ------------------------------------------------------


def test_independent_mistakes_are_reported_together_by_line() -> None:
    with pytest.raises(ConfigErrors) as exc:
        load("grid:\n  batch_size: 0\n  batchsize: 3\n  dtype: [fp16, float8]\n"
             "measurement: {warmup_cv: -1, sample_hz: yes}\ncycles: 0\nordr: x\n")
    lines = exc.value.lines()
    assert [line.split(":")[1] for line in lines] == ["5", "6", "7", "8", "8", "9", "10"], lines
    assert str(exc.value) == "\nerror: ".join(lines)  # the CLI prints 'error: ' first
    assert all("\n" not in line for line in lines)


def test_one_mistake_is_one_line() -> None:
    with pytest.raises(ConfigError) as exc:
        load("grid:\n  batch_size: 0\n")
    assert not isinstance(exc.value, ConfigErrors) and "\n" not in str(exc.value)


def test_yaml_level_mistakes_are_collected_too() -> None:
    with pytest.raises(ConfigErrors) as exc:
        load("grid:\n  a: 1\n  a: 2\n  b: !!binary aGk=\n  c: .nan\n  d: 2020-01-01\n")
    assert len(exc.value.lines()) == 4


def test_reporting_stops_after_max_errors() -> None:
    body = "grid:\n" + "".join(f"  bad{i}: 1\n" for i in range(MAX_ERRORS + 10))
    with pytest.raises(ConfigErrors) as exc:
        load(body)
    lines = exc.value.lines()
    assert len(lines) == MAX_ERRORS + 1 and "stopped after 20 errors" in lines[-1]


def test_missing_required_keys_do_not_hide_the_rest() -> None:
    with pytest.raises(ConfigErrors) as exc:
        load_text("backends: [noop]\ngrid:\n  batch_size: 0\n", "g.yaml")
    text = str(exc.value)
    assert "'name': required key" in text and "'models': required key" in text
    assert "'grid.batch_size': must be >= 1" in text


def test_a_bad_backends_list_does_not_cascade() -> None:
    with pytest.raises(ConfigErrors) as exc:
        load_text("name: t\nmodels: [m]\nbackends: 5\nvllm: {x: 1}\ncycles: 0\n", "g.yaml")
    lines = exc.value.lines()
    assert len(lines) == 2 and "'backends'" in lines[0] and "'cycles'" in lines[1], lines
