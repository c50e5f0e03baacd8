"""The config layer: the grid grammar, job ids, dedupe, include/exclude, load groups, laziness,
and the bad-grid corpus checked in-process (the CLI contract is in test_bad_grids.py)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from llem.config.checks import check_datasets
from llem.config.grid import combinations, count_points, groups, iter_jobs
from llem.config.load import load_campaign, load_text
from llem.config.loaded import Loaded
from llem.errors import ConfigError, ConfigErrors, UserError
from tests.support.bad_grids import (
    BAD,
    CLUSTER_CASES,
    EXPECTED,
    PROMPT_CASES,
    check_lines,
    patterns,
)
from tests.support.grids import error_of, load


def points(loaded: Loaded) -> list[dict[str, Any]]:
    return [j.point.model_dump(mode="json") for j in iter_jobs(loaded) if j.cycle == 0]


# --- the corpus, in-process --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - CLUSTER_CASES))
def test_corpus_file_is_one_located_error(name: str) -> None:
    grid = BAD / name
    elapsed = []
    for _ in range(2):  # the better of two: the first may probe a vllm env (once per cache)
        t0 = time.perf_counter()
        with pytest.raises(UserError) as exc:
            loaded = load_campaign(grid)
            if name in PROMPT_CASES:
                check_datasets(loaded)
        elapsed.append(time.perf_counter() - t0)
    err = exc.value
    lines = err.lines() if isinstance(err, ConfigErrors) else [str(err)]
    if isinstance(EXPECTED[name], str):
        assert not isinstance(err, ConfigErrors) and "\n" not in str(err), str(err)
    check_lines(lines, grid, patterns(name))
    assert min(elapsed) < 2, f"{name} took {min(elapsed):.2f}s"


def test_prompt_cases_pass_load_and_fail_in_check_datasets() -> None:
    for name in PROMPT_CASES:
        loaded = load_campaign(BAD / name)  # loading reads no prompt file
        with pytest.raises(UserError, match=r"'dataset\.path"):
            check_datasets(loaded)


def test_cluster_case_is_valid_config() -> None:
    for name in CLUSTER_CASES:  # only the cluster can tell (the driver checks it)
        assert count_points(load_campaign(BAD / name)) == 1


def test_alias_bomb_is_refused_fast() -> None:
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="anchors/aliases"):
        load_campaign(BAD / "alias_bomb.yaml")
    assert time.perf_counter() - t0 < 2


def test_oversized_file_is_refused_before_parsing(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import llem.config.yaml_source as ys

    def no_parse(*a: Any, **k: Any) -> Any:
        raise AssertionError("parsed an oversized file")

    monkeypatch.setattr(ys, "parse_yaml", no_parse)
    grid = tmp_path / "big.yaml"
    grid.write_text("name: t\n" + "# pad\n" * 200_000)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"big\.yaml: file is over the 1048576-byte limit"):
        load_campaign(grid)
    assert time.perf_counter() - t0 < 2  # reading it whole takes far longer


def test_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        load_campaign(tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        load_campaign(tmp_path / "nope.yaml")


def test_streaming_with_a_backend_that_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every registered backend streams today; a backend that cannot must be refused.
    from llem.backends import REGISTRY

    monkeypatch.setitem(REGISTRY, "noop", dataclasses.replace(REGISTRY["noop"],
                                                              streaming=False))
    msg = error_of("grid:\n  streaming: [false, true]\n")
    assert "grid.yaml:5: 'grid.streaming.1': backend 'noop' cannot measure streaming" in msg
    load("grid:\n  streaming: false\n")  # false is fine


def test_more_mistakes_are_located() -> None:
    assert "'grid.dataset': 'dataset' must be a map" in error_of("grid:\n  dataset: 5\n")
    assert "bad model name" in error_of("", head='name: t\nmodels: ["./a\\0b"]\n')
    assert "'<<' (merge) takes a map" in error_of("measurement: {<<: 5}\n")
    msg = error_of("grid:\n  variants:\n    - {}\n    - {transformer.x: 1}\n")
    assert ":7: 'grid.variants.1': unknown parameter 'transformer.x'" in msg
    msg = error_of("include:\n  - {measurement: {warmup_request: 1}}\n")
    assert "did you mean 'measurement.warmup_requests'" in msg
    assert "empty rule" in error_of("include:\n  - {}\n")
    assert "'dataset.source': dataset.source is 'hf' but dataset.path is not set" in \
        error_of("dataset: {source: hf}\n")
    msg = error_of("dataset: {path: x.jsonl}\ngrid:\n  dataset.path.x: 1\n")
    assert ":6: 'grid.dataset.path.x': 'dataset.path.x' reaches inside 'dataset.path'" in msg
    msg = error_of("grid:\n  generate.a: [1, 2]\n  generate.a.b: [3]\n")
    assert ":6: 'grid.generate.a.b.0': 'generate.a.b' reaches inside 'generate.a'" in msg
    assert "a key in this path is empty" in error_of("grid:\n  vllm..x: 1\n")
    msg = error_of("dataset:\n  source: [builtin, file]\n")
    assert ":5: 'dataset.source.1': dataset.source is 'file'" in msg


# --- the grammar -------------------------------------------------------------------------


def test_scalars_are_fixed_and_lists_are_crossed() -> None:
    pts = points(load("grid:\n  dtype: float16\n  batch_size: [1, 2]\n"
                      "  max_new_tokens: [8, 16, 32]\n"))
    assert len(pts) == 6
    assert {p["dtype"] for p in pts} == {"float16"}
    assert {(p["batch_size"], p["max_new_tokens"]) for p in pts} == \
        {(b, m) for b in (1, 2) for m in (8, 16, 32)}


def test_list_of_dicts_is_dependent_alternatives() -> None:
    pts = points(load("grid:\n  batch_size: 4\n  measurement:\n    - {}\n"
                      "    - {warmup_requests: 5, sample_hz: 20}\n"))
    got = {(p["measurement"]["warmup_requests"], p["measurement"]["sample_hz"]) for p in pts}
    assert got == {(None, 10.0), (5, 20.0)}  # {} = the defaults, no override
    assert {p["batch_size"] for p in pts} == {4}


def test_variants_take_full_paths_and_empty_means_no_override() -> None:
    pts = points(load("grid:\n  batch_size: 4\n  dtype: float32\n  variants:\n    - {}\n"
                      "    - {batch_size: 8, dtype: float16, dataset.num_prompts: 3}\n"))
    got = {(p["batch_size"], p["dtype"], p["dataset"]["num_prompts"]) for p in pts}
    assert got == {(4, "float32", 32), (8, "float16", 3)}


def test_dotted_paths_into_engine_sections() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [noop, transformers]\n"
    loaded = load("transformers:\n  attn_implementation: sdpa\n"
                  "grid:\n  transformers.torch_compile.fullgraph: [true, false]\n"
                  "  generate.num_beams: 1\n", head=head)
    pts = points(loaded)
    noop = [p for p in pts if p["backend"] == "noop"]
    tf = [p for p in pts if p["backend"] == "transformers"]
    assert [p["engine"] for p in noop] == [{}]  # another backend's section does not apply
    assert sorted(str(p["engine"]) for p in tf) == sorted(str(
        {"attn_implementation": "sdpa", "torch_compile": {"fullgraph": v}})
        for v in (True, False))
    assert all(p["generate"] == {"num_beams": 1} for p in pts)
    assert count_points(loaded) == 3


def test_nested_engine_dicts_expand_their_lists() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    pts = points(load("transformers:\n  torch_compile:\n    mode: [default, max-autotune]\n"
                      "    fullgraph: true\n", head=head))
    assert sorted(p["engine"]["torch_compile"]["mode"] for p in pts) == \
        ["default", "max-autotune"]
    assert all(p["engine"]["torch_compile"]["fullgraph"] is True for p in pts)


def test_list_of_lists_is_a_literal_list_value() -> None:
    pts = points(load("grid:\n  generate.stop: [['.', '!']]\n"))
    assert [p["generate"]["stop"] for p in pts] == [[".", "!"]]
    pts = points(load("grid:\n  generate.stop: [['.'], ['!', '?']]\n"))
    assert sorted(map(tuple, (p["generate"]["stop"] for p in pts))) == [("!", "?"), (".",)]


def test_yaml_anchors_aliases_and_merge_keys() -> None:
    loaded = load("grid:\n  measurement:\n"
                  "    - &fast {warmup_requests: 0, sample_hz: 50}\n"
                  "    - {<<: *fast, sample_hz: 100}\n"
                  "    - *fast\n")
    got = sorted((p["measurement"]["warmup_requests"], p["measurement"]["sample_hz"])
                 for p in points(loaded))
    assert got == [(0, 50.0), (0, 100.0)]  # the alias repeats *fast: deduped
    loaded = load("dataset: &ds {num_prompts: 4, seed: 1}\n"
                  "grid:\n  variants:\n    - {}\n    - {dataset: {<<: *ds, seed: 2}}\n")
    assert sorted((p["dataset"]["num_prompts"], p["dataset"]["seed"]) for p in
                  points(loaded)) == [(4, 1), (4, 2)]


def test_merge_keys_do_not_blow_up() -> None:
    body = "grid:\n  measurement:\n    - &m0 {warmup_requests: 1, sample_hz: 2}\n"
    for i in range(1, 30):
        body += f"    - &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}\n"
    t0 = time.perf_counter()
    assert len(points(load(body))) == 1
    assert time.perf_counter() - t0 < 2


def test_key_lines_are_remembered() -> None:
    loaded = load("\n\ngrid:\n  batch_size: [1, 2]\n")
    assert loaded.source.line(("grid", "batch_size", 1)) == 7
    assert loaded.where == {}
    assert [a.key for a in loaded.axes] == ["model", "batch_size"]


# --- job ids, dedupe, include/exclude ----------------------------------------------------


def test_job_id_independent_of_key_order() -> None:
    a = load("grid:\n  batch_size: [1, 2]\n  dtype: float16\n"
             "measurement: {warmup_requests: 3, sample_hz: 5}\n")
    b = load_text("measurement: {sample_hz: 5, warmup_requests: 3}\ngrid:\n  dtype: float16\n"
                  "  batch_size: [2, 1]\nbackends: [noop]\nmodels: [llem:tiny]\nname: other\n")
    assert {j.job_id for j in iter_jobs(a)} == {j.job_id for j in iter_jobs(b)}


def test_same_point_in_two_files_has_the_same_id() -> None:
    a = {(p.point.batch_size, p.point.max_new_tokens): p.job_id
         for p in iter_jobs(load("grid:\n  batch_size: [1, 2]\n  max_new_tokens: 8\n"))}
    b = {(p.point.batch_size, p.point.max_new_tokens): p.job_id
         for p in iter_jobs(load("grid:\n  batch_size: 2\n  max_new_tokens: [8, 16]\n"))}
    assert a[(2, 8)] == b[(2, 8)]
    assert len(set(a.values()) | set(b.values())) == 3


def test_cycles_do_not_change_job_id() -> None:
    one = list(iter_jobs(load("cycles: 1\ngrid:\n  batch_size: [1, 2]\n")))
    three = list(iter_jobs(load("cycles: 3\ngrid:\n  batch_size: [1, 2]\n")))
    assert len(three) == 6
    assert {j.job_id for j in one} == {j.job_id for j in three}
    assert sorted(j.cycle for j in three) == [0, 0, 1, 1, 2, 2]
    assert len({j.key for j in three}) == 6


def test_points_resolving_to_the_same_configuration_are_deduped() -> None:
    assert len(points(load("grid:\n  dtype: [float32, fp32, FP32]\n"))) == 1
    assert len(points(load("grid:\n  batch_size: [1, 1, 2]\n"))) == 2
    assert len(points(load("grid:\n  measurement: [{}, {warmup_requests: null}]\n"))) == 1
    # two load combos resolving to the same load ({} vs the default): one group, one job
    loaded = load("grid:\n  variants: [{}, {dtype: auto}]\n")
    assert len(list(groups(loaded))) == 1 and len(list(iter_jobs(loaded))) == 1


def test_include_keeps_only_matching_points() -> None:
    body = "grid:\n  batch_size: [1, 2, 4]\n  max_new_tokens: [8, 16]\n"
    pts = points(load(body + "include:\n  - {batch_size: 1}\n  - {batch_size: 4, "
                      "max_new_tokens: 16}\n"))
    assert sorted((p["batch_size"], p["max_new_tokens"]) for p in pts) == \
        [(1, 8), (1, 16), (4, 16)]
    pts = points(load(body + "include:\n  - {batch_size: [2, 4]}\n"))
    assert sorted(p["batch_size"] for p in pts) == [2, 2, 4, 4]


def test_exclude_drops_matching_points() -> None:
    body = "grid:\n  batch_size: [1, 2, 4]\n  max_new_tokens: [8, 16]\n"
    pts = points(load(body + "exclude:\n  - {batch_size: 4, max_new_tokens: 16}\n"))
    assert len(pts) == 5 and (4, 16) not in {(p["batch_size"], p["max_new_tokens"])
                                             for p in pts}
    pts = points(load(body + "include:\n  - {max_new_tokens: 8}\n"
                      "exclude:\n  - {batch_size: [1, 2]}\n"))
    assert [(p["batch_size"], p["max_new_tokens"]) for p in pts] == [(4, 8)]
    pts = points(load(body + "  measurement.warmup_requests: [1, 2]\n"
                      "exclude:\n  - {measurement: {warmup_requests: 2}}\n"))
    assert {p["measurement"]["warmup_requests"] for p in pts} == {1}  # nested map = path


# --- load groups, counting, laziness ------------------------------------------------------


def test_jobs_differing_only_in_run_settings_share_a_load() -> None:
    loaded = load("grid:\n  batch_size: [1, 8]\n  max_new_tokens: [8, 16]\n")
    gs = list(groups(loaded))
    assert len(gs) == 1
    jobs = list(gs[0].jobs())
    assert len(jobs) == 4 and len({j.load_key for j in jobs}) == 1


def test_dtype_and_engine_args_split_loads() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    loaded = load("grid:\n  dtype: [float32, float16]\n  batch_size: [1, 8]\n"
                  "  transformers.attn_implementation: [eager, sdpa]\n", head=head)
    gs = list(groups(loaded))
    assert len(gs) == 4 and len({g.load_key for g in gs}) == 4
    for g in gs:
        jobs = list(g.jobs())
        assert sorted(j.point.batch_size for j in jobs) == [1, 8]
        assert {j.load_key for j in jobs} == {g.load_key}


def test_count_points() -> None:
    head = "name: t\nmodels: [llem:tiny, llem:random-0.8b]\nbackends: [noop, transformers]\n"
    loaded = load("grid:\n  batch_size: [1, 2, 4]\ntransformers:\n  attn_implementation: "
                  "[sdpa, eager]\n", head=head)
    assert count_points(loaded) == 2 * 3 + 2 * 3 * 2
    assert count_points(load("grid:\n  batch_size: 1\n")) == 1


def test_iteration_is_lazy() -> None:
    loaded = load("max_points: 2000000\ngrid:\n  temperature: 0.5\n  batch_size: " +
                  str(list(range(1, 101))) +
                  "\n  max_new_tokens: " + str(list(range(1, 101))) +
                  "\n  seed: " + str(list(range(100))) + "\n")
    assert count_points(loaded) == 1_000_000
    t0 = time.perf_counter()
    group = next(groups(loaded))
    job = next(group.jobs())
    assert time.perf_counter() - t0 < 2  # enumerating the 1,000,000 points takes far longer
    assert group.size_hint == 1_000_000
    assert (job.point.batch_size, job.point.max_new_tokens, job.point.seed) == (1, 1, 0)


def test_combinations_enumerate_only_dataset_axes() -> None:
    loaded = load("dataset: {num_prompts: [4, 8]}\ngrid:\n  batch_size: "
                  + str(list(range(1, 201))) + "\n  variants: [{}, {dataset.seed: 3}]\n")
    got = list(combinations(loaded, lambda p: p.startswith("dataset.")))
    assert len(got) == 4
    values, where = got[-1]
    assert values == {"dataset.num_prompts": 8, "dataset.seed": 3}
    assert where["dataset.seed"] == ("grid", "variants", 1)


def test_check_datasets_reads_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"text": "hi"}\n')
    (tmp_path / "q.txt").write_text("one\ntwo\n")
    loaded = load("dataset:\n  source: file\n  path: [p.jsonl, q.txt]\n"
                  "  num_prompts: [1, 2, 3]\n", base_dir=tmp_path)
    loaded.path = tmp_path / "grid.yaml"
    check_datasets(loaded)
    (tmp_path / "q.txt").unlink()
    with pytest.raises(UserError, match=r"grid\.yaml:6: 'dataset\.path\.1': prompt file"):
        check_datasets(loaded)
    check_datasets(load("dataset: {source: builtin}\n"))  # builtin: nothing to read
