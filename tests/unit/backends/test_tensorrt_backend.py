"""The TensorRT-LLM backend without TensorRT-LLM: what llem itself decides.

tensorrt-llm cannot be installed on the machines llem is written on (its wheel comes from
NVIDIA's index), so the backend has never run. What is tested here is llem's own part:
the mapping of grid parameters to SamplingParams / BuildConfig / LLM arguments, the engine
cache key and the atomic publication of a built engine, with real files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llem.backends import GenerateSpec, LoadSpec, get_info
from llem.backends.tensorrt.backend import (
    ENGINE_MARKER,
    RUNTIME_ONLY,
    engine_cache_root,
    engine_key,
    model_identity,
    perf_durations,
    publish_engine,
    sampling_kwargs,
    split_engine_args,
)
from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.errors import ConfigError
from llem.harness.runner import generate_spec

ARCH, VERSION = "sm90:NVIDIA H100 80GB HBM3", "1.2.1"


def _spec(**engine: object) -> LoadSpec:
    return LoadSpec(model="meta-llama/Llama-3.1-8B-Instruct", dtype="bfloat16", gpus=2,
                    engine=dict(engine))


def test_engine_args_split_into_build_config_and_llm_untouched() -> None:
    build, llm = split_engine_args(_spec(
        build={"max_batch_size": 64, "max_seq_len": 4096, "plugin_config": {"x": 1}},
        kv_cache_config={"free_gpu_memory_fraction": 0.8}, dtype="float16",
        model="ignored", tensor_parallel_size=1))
    assert build == {"max_batch_size": 64, "max_seq_len": 4096, "plugin_config": {"x": 1}}
    # engine args win over llem's defaults (dtype, tensor_parallel_size from gpus) ...
    assert llm == {"dtype": "float16", "tensor_parallel_size": 1,
                   "kv_cache_config": {"free_gpu_memory_fraction": 0.8}}
    # ... and without them the defaults apply; the load key's model is never overridden
    assert split_engine_args(_spec()) == ({}, {"dtype": "bfloat16", "tensor_parallel_size": 2})
    cpu = LoadSpec(model="m", dtype="auto")
    assert split_engine_args(cpu) == ({}, {"dtype": "auto"})


@pytest.mark.parametrize(("spec", "expect"), [
    # greedy: top_k=1 with top_p unset is what SamplingParams itself calls greedy
    (GenerateSpec(max_new_tokens=64), {"max_tokens": 64, "seed": 0, "repetition_penalty": 1.0,
                                       "top_k": 1, "return_perf_metrics": True}),
    (GenerateSpec(max_new_tokens=8, temperature=0.7, top_p=0.9, top_k=0, seed=3,
                  repetition_penalty=1.1, min_new_tokens=8),
     {"max_tokens": 8, "seed": 3, "repetition_penalty": 1.1, "temperature": 0.7, "top_p": 0.9,
      "min_tokens": 8, "return_perf_metrics": True}),  # top_k 0: the library's "all logits"
    (GenerateSpec(max_new_tokens=8, temperature=1.0, top_k=50, extra={
        "top_k": 5, "ignore_eos": True, "return_perf_metrics": False}),
     {"max_tokens": 8, "seed": 0, "repetition_penalty": 1.0, "temperature": 1.0,
      "top_p": 1.0, "top_k": 5, "ignore_eos": True, "return_perf_metrics": False}),  # extras win
])
def test_sampling_params_mapping(spec: GenerateSpec, expect: dict) -> None:
    assert sampling_kwargs(spec) == expect


def test_grid_parameters_reach_sampling_params() -> None:
    """From a grid file through the harness's GenerateSpec to SamplingParams kwargs."""
    loaded = load_text("name: t\nmodels: [m]\nbackends: [tensorrt]\n"
                       "grid: {max_new_tokens: 16, output_policy: fixed, temperature: 0.5,"
                       " top_p: 0.8, max_input_tokens: 32}\n")
    (job,) = list(iter_jobs(loaded))
    kw = sampling_kwargs(generate_spec(job.point))
    assert kw["min_tokens"] == kw["max_tokens"] == 16  # output_policy fixed
    assert (kw["temperature"], kw["top_p"]) == (0.5, 0.8)
    assert "max_input_tokens" not in kw and "truncate_prompt_tokens" not in kw  # see _inputs


def test_unsupported_parameter_is_a_validation_error_naming_backend() -> None:
    info = get_info("tensorrt")
    assert "input_policy" not in info.supports and info.streaming
    with pytest.raises(ConfigError, match="backend 'tensorrt' does not support 'input_policy'"):
        load_text("name: t\nmodels: [m]\nbackends: [transformers, tensorrt]\n"
                  "grid: {max_input_tokens: 8, input_policy: pad}\n")


def test_engine_key_depends_on_what_shapes_the_engine() -> None:
    base = engine_key(_spec(build={"max_batch_size": 64}), ARCH, VERSION)
    assert len(base) == 16 and base == engine_key(_spec(build={"max_batch_size": 64}), ARCH,
                                                  VERSION)
    others = {
        "build": engine_key(_spec(build={"max_batch_size": 128}), ARCH, VERSION),
        "arch": engine_key(_spec(build={"max_batch_size": 64}), "sm80:NVIDIA A100", VERSION),
        "version": engine_key(_spec(build={"max_batch_size": 64}), ARCH, "1.3.0"),
        "dtype": engine_key(_spec(build={"max_batch_size": 64}, dtype="float16"), ARCH,
                            VERSION),
        "model": engine_key(LoadSpec(model="other/model", dtype="bfloat16", gpus=2,
                                     engine={"build": {"max_batch_size": 64}}), ARCH, VERSION),
        "tp": engine_key(LoadSpec(model=_spec().model, dtype="bfloat16", gpus=1,
                                  engine={"build": {"max_batch_size": 64}}), ARCH, VERSION),
    }
    assert base not in others.values() and len(set(others.values())) == len(others)
    # run-time executor settings do not change the engine: same key, engine reused
    assert "kv_cache_config" in RUNTIME_ONLY
    runtime = engine_key(_spec(build={"max_batch_size": 64},
                               kv_cache_config={"free_gpu_memory_fraction": 0.5}), ARCH, VERSION)
    assert runtime == base


def test_local_model_identity_follows_its_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 128}')
    (model / "model.safetensors").write_bytes(b"x" * 10)
    (model / "README.md").write_text("not a weight")
    ident = model_identity(str(model))
    assert ident["weights"][0][:2] == ["model.safetensors", 10] and len(ident["weights"]) == 1
    spec = LoadSpec(model=str(model), dtype="float16")
    k1 = engine_key(spec, ARCH, VERSION)
    (model / "config.json").write_text('{"hidden_size": 256}')  # another model, same path
    k2 = engine_key(spec, ARCH, VERSION)
    (model / "model.safetensors").write_bytes(b"y" * 11)  # retrained weights
    k3 = engine_key(spec, ARCH, VERSION)
    assert len({k1, k2, k3}) == 3
    assert model_identity("org/name") == {"model": "org/name"}  # a hub id as is


def test_publish_engine_is_atomic_and_first_wins(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_CACHE", str(tmp_path))
    root = engine_cache_root()
    assert root == tmp_path / "trt-engines"
    target = root / "abc123"

    def save(into: Path) -> None:  # what LLM.save does: writes the engine folder
        into.mkdir(parents=True)
        (into / "rank0.engine").write_bytes(b"engine-1")

    assert publish_engine(target, save, {"key": "abc123"}) is True
    assert (target / "rank0.engine").read_bytes() == b"engine-1"
    assert json.loads((target / ENGINE_MARKER).read_text()) == {"key": "abc123"}

    def save_other(into: Path) -> None:
        into.mkdir(parents=True)
        (into / "rank0.engine").write_bytes(b"engine-2")

    # a second worker that built the same engine: its copy is dropped, the first stays
    assert publish_engine(target, save_other, {"key": "abc123"}) is False
    assert (target / "rank0.engine").read_bytes() == b"engine-1"
    assert sorted(p.name for p in root.iterdir()) == ["abc123"]  # no temp folder left

    def crash(into: Path) -> None:
        into.mkdir(parents=True)
        (into / "half").write_bytes(b"x")
        raise RuntimeError("build died")

    with pytest.raises(RuntimeError):
        publish_engine(root / "def456", crash, {})
    assert not (root / "def456").exists()  # nothing that looks cached
    leftovers = [p for p in root.iterdir() if p.name.startswith(".def456")]
    assert leftovers and not (leftovers[0] / ENGINE_MARKER).exists()
    assert publish_engine(root / "def456", save, {}) is True  # the retry cleans it up
    assert not (root / f".def456.{os.getpid()}").exists()



def test_runtime_perf_metrics_become_durations_or_nothing() -> None:
    """RequestPerfMetrics.timing_metrics (timedelta stamps in TensorRT-LLM's own tests and
    clients) -> queue/prefill/decode seconds, the columns vLLM's stats fill; a missing
    stamp or no metrics (return_perf_metrics off) leaves them null."""
    from datetime import timedelta
    from types import SimpleNamespace

    def completion(**stamps: object) -> SimpleNamespace:
        return SimpleNamespace(request_perf_metrics=SimpleNamespace(
            timing_metrics=SimpleNamespace(**stamps)))

    full = completion(arrival_time=timedelta(seconds=100), first_scheduled_time=timedelta(
        seconds=100.25), first_token_time=timedelta(seconds=100.75),
        last_token_time=timedelta(seconds=102.75))
    assert perf_durations(full) == {"queue_s": 0.25, "prefill_s": 0.5, "decode_s": 2.0}
    floats = completion(arrival_time=0.0, first_scheduled_time=5.0, first_token_time=5.5,
                        last_token_time=None)
    assert perf_durations(floats) == {"prefill_s": 0.5}
    assert perf_durations(SimpleNamespace(request_perf_metrics=None)) == {}
    assert perf_durations(SimpleNamespace()) == {}
