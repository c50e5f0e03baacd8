"""Decoding presets and sampling parameters, mapped to each backend's native parameters:
transformers' generation config and logits processors (the real library on the tiny model),
vLLM's SamplingParams (in the vLLM venv), TensorRT-LLM's SamplingParams kwargs; and the
sampling flags of `llem run`, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem.backends.tensorrt.backend import sampling_kwargs
from llem.config.models import Point
from llem.config.vocab import PRESETS
from llem.envs.environments import llem_source_dir
from llem.harness.runner import generate_spec
from tests.support.cli import run_cli

NAMED = ("deterministic", "standard", "creative")


def spec_of(preset: str, **values: object):  # type: ignore[no-untyped-def]
    return generate_spec(Point(backend="transformers", model="m", preset=preset, **values))


def test_presets_fill_only_what_is_not_written() -> None:
    p = Point(backend="vllm", model="m", preset="creative", temperature=0.5)
    assert (p.temperature, p.top_p, p.top_k, p.repetition_penalty) == (0.5, 0.95, 0, 1.1)
    for name in NAMED:
        values = PRESETS[name]
        q = Point(backend="vllm", model="m", preset=name)
        assert {k: getattr(q, k) for k in values} == values


def test_transformers_native_parameters(tiny_model: Path) -> None:
    """What generate() really applies: the merged generation config and its logits
    processors (greedy has none; top_k 0 adds no top-k warper; penalty 1.0 adds none)."""
    from llem.backends.base import LoadSpec
    from llem.backends.transformers.backend import TransformersBackend

    b = TransformersBackend(LoadSpec(model=str(tiny_model), dtype="float32", gpus=0))
    expect = {
        "deterministic": (False, [], {}),
        "standard": (True, ["TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper"],
                     {"temperature": 0.7, "top_k": 50, "top_p": 0.9}),
        "creative": (True, ["RepetitionPenaltyLogitsProcessor", "TopPLogitsWarper"],
                     {"temperature": 1.0, "top_p": 0.95, "repetition_penalty": 1.1}),
    }
    for name in NAMED:
        kw = b._kwargs(spec_of(name))
        cfg, _ = b.model._prepare_generation_config(None, **kw)
        procs = b.model._get_logits_processor(
            generation_config=cfg, input_ids_seq_length=4, encoder_input_ids=None,
            prefix_allowed_tokens_fn=None, logits_processor=None, device="cpu")
        sample, names, values = expect[name]
        assert cfg.do_sample is sample, name
        assert [type(p).__name__ for p in procs] == names, name
        assert {k: getattr(cfg, k) for k in values} == values, name


def test_tensorrt_native_parameters() -> None:
    sampling = ("max_tokens", "seed", "repetition_penalty", "temperature", "top_p", "top_k",
                "min_tokens")

    def kw(spec) -> dict:  # type: ignore[no-untyped-def]
        return {k: v for k, v in sampling_kwargs(spec).items() if k in sampling}

    assert kw(spec_of("deterministic")) == {
        "max_tokens": 64, "seed": 0, "repetition_penalty": 1.0, "top_k": 1}
    assert kw(spec_of("standard")) == {
        "max_tokens": 64, "seed": 0, "repetition_penalty": 1.0, "temperature": 0.7,
        "top_p": 0.9, "top_k": 50}
    assert kw(spec_of("creative", seed=5)) == {
        "max_tokens": 64, "seed": 5, "repetition_penalty": 1.1, "temperature": 1.0,
        "top_p": 0.95}  # top_k 0: TensorRT-LLM's default, all logits


VLLM_SCRIPT = r'''
import json, sys
from llem.backends.vllm.backend import VllmBackend
from llem.config.models import Point
from llem.harness.runner import generate_spec
from vllm.sampling_params import RequestOutputKind
out = {}
for name in sys.argv[1:]:
    p = VllmBackend._sampling(generate_spec(Point(backend="vllm", model="m", preset=name,
                                                  min_new_tokens=2, seed=11)),
                              RequestOutputKind.FINAL_ONLY)
    out[name] = {k: getattr(p, k) for k in ("temperature", "top_p", "top_k",
                 "repetition_penalty", "min_tokens", "max_tokens", "seed")}
    out[name]["greedy"] = p.sampling_type.name
print("LLEM_JSON " + json.dumps(out))
'''


@pytest.mark.slow
def test_vllm_native_parameters(vllm_python: Path, tmp_path: Path) -> None:
    script = tmp_path / "presets.py"
    script.write_text(VLLM_SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(llem_source_dir())
    proc = subprocess.run([str(vllm_python), str(script), *NAMED], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("LLEM_JSON ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    got = json.loads(lines[-1].removeprefix("LLEM_JSON "))
    common = {"min_tokens": 2, "max_tokens": 64, "seed": 11}
    assert got["deterministic"] == {"temperature": 0.0, "top_p": 1.0, "top_k": 0,  # greedy:
                                    "repetition_penalty": 1.0, **common, "seed": 0,  # no seed
                                    "greedy": "GREEDY"}
    assert got["standard"] == {"temperature": 0.7, "top_p": 0.9, "top_k": 50,
                               "repetition_penalty": 1.0, **common, "greedy": "RANDOM_SEED"}
    assert got["creative"] == {"temperature": 1.0, "top_p": 0.95, "top_k": 0,
                               "repetition_penalty": 1.1, **common, "greedy": "RANDOM_SEED"}


@pytest.mark.slow
def test_sampling_flags_of_llem_run(tmp_path: Path, llem_cache: Path) -> None:
    r = run_cli("run", "--model", "llem:tiny", "-n", "2", "--batch-size", "2",
                "--max-new-tokens", "4", "--preset", "standard", "--temperature", "0.2",
                "--top-k", "5", "--min-new-tokens", "3", "--repetition-penalty", "1.05",
                "--sampling-seed", "9", "--no-gaps", "--quiet", "--store", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr[-3000:]
    (f,) = (tmp_path / "s" / "runs").rglob("*.parquet")
    (row,) = pq.read_table(f).to_pylist()
    assert (row["preset"], row["temperature"], row["top_p"], row["top_k"]) == \
        ("standard", 0.2, 0.9, 5)  # flags win over the preset; top_p from the preset
    assert (row["min_new_tokens"], row["repetition_penalty"], row["seed"]) == (3, 1.05, 9)
    assert row["status"] == "ok" and row["output_tokens"] >= 2 * 3
