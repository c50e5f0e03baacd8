"""The offline tiny model: loads like a hub model, generates varied text, is reproducible."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from llem.models.tiny import build_tiny_model
from tests.support.paths import ROOT

PROMPTS = ["Explain how tides work.", "Write a haiku about a lighthouse.",
           "What is the capital of Australia?", "Summarise the meeting notes below."]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=0)


@pytest.fixture(scope="module")
def loaded(model_dir: Path):
    """Loaded the way a user's run loads it: from the directory, hub access off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        yield AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(
            model_dir)


def test_module_imports_without_torch() -> None:
    code = ("import sys, llem.models.tiny, llem.prompts.files; "
            "assert not {'torch', 'transformers', 'tokenizers'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=ROOT)


def test_layout_and_config(model_dir: Path, loaded) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (model_dir / name).is_file(), name
    assert not [p for p in model_dir.parent.iterdir() if ".build." in p.name]
    assert not (model_dir.parent / ".m.lock").exists()  # the build's lock goes with it
    tok, model = loaded
    cfg = model.config
    assert cfg.model_type == "llama" and cfg.hidden_size // cfg.num_attention_heads >= 64
    assert not cfg.tie_word_embeddings and cfg.initializer_range == pytest.approx(0.2)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert cfg.vocab_size == len(tok) == 2048
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"


def test_tokenizer_round_trips_and_pads_left(loaded) -> None:
    tok, _ = loaded
    for text in ["The quick brown fox jumps over the lazy dog.", "def f(x):\n    return x * 2",
                 "Prices rose 4.5% in 2024; caf\u00e9 owners shrugged!", "  spaced  out  "]:
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.padding_side == "left"
    enc = tok(["short", "a considerably longer prompt than the first"], padding=True,
              return_tensors="pt")
    assert enc["input_ids"].shape[0] == 2
    assert enc["input_ids"][0, 0] == tok.pad_token_id and enc["attention_mask"][0, 0] == 0
    assert enc["attention_mask"][:, -1].tolist() == [1, 1]


def test_greedy_generation_varies(loaded) -> None:
    import torch

    tok, model = loaded
    outs = []
    with torch.no_grad():
        for prompt in PROMPTS:
            enc = tok(prompt, return_tensors="pt")
            out = model.generate(**enc, max_new_tokens=32, min_new_tokens=32, do_sample=False)
            new = out[0, enc["input_ids"].shape[1]:].tolist()
            assert len(new) == 32
            assert len(set(new)) > 8, new  # not one token repeated (init_std 0.02 does that)
            outs.append(new)
    assert len({tuple(o) for o in outs}) == len(PROMPTS)


def test_batched_generation_matches_single(loaded) -> None:
    """Left padding: a padded batch decodes the same greedy tokens as each prompt alone."""
    import torch

    tok, model = loaded
    with torch.no_grad():
        enc = tok(PROMPTS[:2], padding=True, return_tensors="pt")
        batch = model.generate(**enc, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        for i, prompt in enumerate(PROMPTS[:2]):
            one = tok(prompt, return_tensors="pt")
            single = model.generate(**one, max_new_tokens=8, min_new_tokens=8, do_sample=False)
            assert batch[i, enc["input_ids"].shape[1]:].tolist() == \
                single[0, one["input_ids"].shape[1]:].tolist()


def test_deterministic_per_seed(model_dir: Path, tmp_path: Path) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    same = build_tiny_model(tmp_path / "same", seed=0)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG is left alone
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert digest(same / name) == digest(model_dir / name), name
    assert digest(other / "model.safetensors") != digest(model_dir / "model.safetensors")
    assert digest(other / "tokenizer.json") == digest(model_dir / "tokenizer.json")


def test_complete_model_is_reused_and_force_rebuilds(tmp_path: Path) -> None:
    out = build_tiny_model(tmp_path / "m", seed=0)
    weights = out / "model.safetensors"
    before = (weights.stat().st_mtime_ns, weights.stat().st_ino)
    (out / "marker").write_text("kept")
    assert build_tiny_model(out, seed=5) == out  # complete: returned as is
    assert (weights.stat().st_mtime_ns, weights.stat().st_ino) == before
    assert (out / "marker").exists()
    build_tiny_model(out, seed=0, force=True)
    assert not (out / "marker").exists() and weights.stat().st_ino != before[1]


def test_incomplete_model_is_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")  # an interrupted copy, say
    build_tiny_model(out)
    assert (out / "model.safetensors").is_file() and (out / "config.json").stat().st_size > 2


def test_refuses_to_replace_an_unrelated_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="holds no model"):
        build_tiny_model(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("hidden, heads", [(128, 4), (96, 2), (200, 3), (130, 2), (128, 0)])
def test_head_dim_must_be_at_least_64(tmp_path: Path, hidden: int, heads: int) -> None:
    with pytest.raises(ValueError, match="head_dim"):
        build_tiny_model(tmp_path / "m", hidden_size=hidden, num_heads=heads)
    assert not (tmp_path / "m").exists()


def test_bf16_build_saves_bf16_weights(tmp_path: Path) -> None:
    """dtype is what lands on disk: a 7B shape in bf16 is half the bytes to write and load."""
    from safetensors import safe_open

    path = build_tiny_model(tmp_path / "m", dtype="bfloat16")
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118 (no __iter__)
    assert dtypes == {"BF16"}
    with pytest.raises(ValueError, match="dtype 'int8'"):
        build_tiny_model(tmp_path / "x", dtype="int8")


def test_random_7b_is_llama_2_7b_shaped() -> None:
    """llem:random-7b is the GPU-bound benchmark model: Llama-2-7B's layers, bf16 on disk."""
    from llem.models.builtin import BUILTIN_MODELS

    s = BUILTIN_MODELS["random-7b"]
    layers = s["num_layers"] * (4 * s["hidden_size"] ** 2
                                + 3 * s["hidden_size"] * s["intermediate_size"])
    assert 6.4e9 < layers < 6.6e9 and s["dtype"] == "bfloat16"
