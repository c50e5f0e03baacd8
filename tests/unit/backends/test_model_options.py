"""transformers model options on the tiny model (CPU): an assistant model really drafts, a
LoRA adapter (peft) really changes the weights, torch.compile and the attention
implementation reach the library; each is recorded with the result; combinations
transformers rejects are one-line validation errors before anything runs."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem.backends.base import GenerateSpec, LoadSpec
from llem.models.tiny import build_tiny_model
from tests.support.cli import run_cli

GREEDY = GenerateSpec(max_new_tokens=8, min_new_tokens=8, temperature=0.0, top_p=1.0, top_k=0,
                      repetition_penalty=1.0, seed=0, streaming=False, max_input_tokens=None,
                      input_policy="truncate", extra={})
PROMPTS = ["The quick brown fox jumps over", "Explain why the sky is blue"]


@pytest.fixture(scope="module")
def draft(llem_cache: Path) -> Path:
    """A second tiny model (another seed, same tokenizer recipe): the assistant."""
    return build_tiny_model(llem_cache / "draft", seed=2)


@pytest.fixture(scope="module")
def lora(tiny_model: Path, llem_cache: Path) -> Path:
    """A LoRA adapter on q/v with random (non-zero) B, so it changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = llem_cache / "lora"
    if not (out / "adapter_config.json").exists():
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        torch.manual_seed(0)
        cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(base, cfg).save_pretrained(out)
    return out


def backend(model: Path, engine: dict) -> object:
    from llem.backends.transformers.backend import TransformersBackend

    return TransformersBackend(LoadSpec(model=str(model), dtype="float32", engine=engine,
                                        gpus=0))


def greedy_ids(b: object, prompt: str) -> list[int]:
    import torch

    enc = b.tokenizer([prompt], return_tensors="pt")  # type: ignore[attr-defined]
    with torch.inference_mode():
        out = b.model.generate(**enc, max_new_tokens=8, do_sample=False)  # type: ignore
    return out[0].tolist()


def test_assistant_drafts_and_keeps_greedy_output(tiny_model: Path, draft: Path) -> None:
    plain = backend(tiny_model, {})
    assisted = backend(tiny_model, {"assistant_model": str(draft)})
    assert assisted.load_facts["assistant_model"] == str(draft)  # type: ignore[attr-defined]
    calls = []
    assisted.assistant.register_forward_hook(lambda *a: calls.append(1))  # type: ignore
    for prompt in PROMPTS:
        (rec,) = assisted.generate([prompt], GREEDY)  # type: ignore[attr-defined]
        assert rec.output_tokens == 8
        # assisted greedy decoding verifies every draft token: the output is plain greedy's
        assert greedy_ids(assisted, prompt) == greedy_ids(plain, prompt)
    assert calls, "the assistant model never ran"


def test_lora_adapter_changes_outputs_and_is_recorded(tiny_model: Path, lora: Path) -> None:
    plain = backend(tiny_model, {})
    tuned = backend(tiny_model, {"adapter": str(lora), "attn_implementation": "eager",
                                 "torch_compile": {"backend": "eager"}})
    facts = tuned.load_facts  # type: ignore[attr-defined]
    assert facts == {"attn_implementation": "eager", "quantization": None, "compiled": True,
                     "adapter": str(lora), "assistant_model": None}
    assert any(greedy_ids(tuned, p) != greedy_ids(plain, p) for p in PROMPTS)


OPTIONS_GRID = """\
name: options
models: [llem:tiny]
backends: [transformers]
grid: {{dtype: float32, batch_size: 1, max_new_tokens: 4}}
transformers:
  attn_implementation: eager
  torch_compile: {{backend: eager}}
  adapter: {lora}
  assistant_model: {draft}
dataset: {{num_prompts: 2}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
"""


@pytest.mark.slow
def test_options_through_the_cli_are_recorded(tmp_path: Path, lora: Path, draft: Path) -> None:
    grid = tmp_path / "options.yaml"
    grid.write_text(OPTIONS_GRID.format(lora=lora, draft=draft))
    r = run_cli("run", str(grid), "--store", str(tmp_path / "s"), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    (f,) = (tmp_path / "s" / "runs").rglob("*.parquet")
    (row,) = pq.read_table(f).to_pylist()
    assert row["status"] == "ok" and row["num_requests"] == 2
    assert (row["attn_implementation"], row["compiled"], row["adapter"],
            row["assistant_model"], row["quantization"]) == ("eager", True, str(lora),
                                                             str(draft), None)


@pytest.mark.parametrize(("setting", "message"), [
    ("{assistant_model: llem:tiny}\ngrid: {batch_size: 2}",
     "transformers runs assisted generation only with batch_size 1 (this job has 2)"),
    ("{assistant_model: llem:tiny}\ngrid: {streaming: true}",
     "per-token times cannot be observed"),
    ("{quantization: 4bit}", "needs a GPU"),
    ("{quantization: {load_in_4bit: true, load_in_8bit: true}}", "cannot both be true"),
    ("{attn_implementation: flash_attention_2}", "flash_attention_2 needs a GPU"),
    ("{torch_compile: {mode: fastest}}", "unknown mode 'fastest'"),
    ("{adapter: ./no-such-adapter}", "adapter path"),
    ("{assistant_model: ' '}", "a blank one ran no assistant"),  # was accepted, then ignored
])
def test_rejected_combinations_fail_before_anything_runs(tmp_path: Path, setting: str,
                                                         message: str) -> None:
    grid = tmp_path / "bad.yaml"
    grid.write_text("name: bad\nmodels: [llem:tiny]\ntransformers: " + setting + "\n")
    r = run_cli("run", str(grid), "--store", str(tmp_path / "s"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
