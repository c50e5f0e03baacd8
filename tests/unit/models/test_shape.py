"""llem.models.shape against transformers: each family's model, built from a tiny config, has
exactly the parameters shape_of() counts from the same config, whether config.json holds
every key or only those differing from the family's defaults (as save_pretrained writes it).
FLOPs of a plain-MLP family against a hand count."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llem.models.flops import estimate_flops, request_flops
from llem.models.shape import Shape, ShapeError, shape_of

LLAMA = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2}
GPT = {"vocab_size": 96, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 40,
       "bos_token_id": 0, "eos_token_id": 0}
NEOX = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 80, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 40}
OPT = {"vocab_size": 96, "hidden_size": 32, "ffn_dim": 80, "num_hidden_layers": 2,
       "num_attention_heads": 4, "max_position_embeddings": 40}

# family -> (transformers config class, its arguments)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", LLAMA),
    "llama-tied": ("LlamaConfig", {**LLAMA, "tie_word_embeddings": True}),
    "llama-biases": ("LlamaConfig", {**LLAMA, "attention_bias": True, "mlp_bias": True,
                                     "head_dim": 16}),
    "mistral": ("MistralConfig", LLAMA),
    "qwen2": ("Qwen2Config", LLAMA),
    "qwen2-tied": ("Qwen2Config", {**LLAMA, "tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", {**LLAMA, "head_dim": 16}),
    "qwen3-default-head-dim": ("Qwen3Config", LLAMA),  # 128, not hidden / heads
    "qwen3-attention-bias": ("Qwen3Config", {**LLAMA, "attention_bias": True}),
    "gpt2": ("GPT2Config", GPT),
    "gpt2-untied-n-inner": ("GPT2Config", {**GPT, "n_inner": 72, "tie_word_embeddings": False}),
    "gpt_bigcode": ("GPTBigCodeConfig", GPT),  # multi-query: one K/V head
    "gpt_bigcode-multi-head": ("GPTBigCodeConfig", {**GPT, "multi_query": False}),
    "gpt_neox": ("GPTNeoXConfig", NEOX),
    "gpt_neox-tied-no-attention-bias": ("GPTNeoXConfig", {**NEOX, "attention_bias": False,
                                                          "tie_word_embeddings": True}),
    "opt": ("OPTConfig", OPT),
    "opt-350m-like": ("OPTConfig", {**OPT, "word_embed_proj_dim": 16,
                                    "do_layer_norm_before": False}),
    "opt-no-bias-no-affine": ("OPTConfig", {**OPT, "enable_bias": False,
                                            "layer_norm_elementwise_affine": False,
                                            "tie_word_embeddings": False}),
    "gptj": ("GPTJConfig", {**GPT, "rotary_dim": 4}),
    "gptj-tied": ("GPTJConfig", {**GPT, "rotary_dim": 4, "n_inner": 72,
                                 "tie_word_embeddings": True}),
}


def unique_params(model: Any) -> int:
    """Parameters of a model, each storage once (tied weights share one)."""
    seen = {p.data_ptr(): p.numel() for _, p in model.named_parameters(remove_duplicate=False)}
    return sum(seen.values())


@pytest.fixture(scope="module")
def tr() -> Any:
    import torch
    import transformers

    torch.manual_seed(0)
    return transformers


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_count_matches_transformers(tr: Any, family: str) -> None:
    cls, kwargs = FAMILIES[family]
    cfg = getattr(tr, cls)(**kwargs)
    model = tr.AutoModelForCausalLM.from_config(cfg)
    real = unique_params(model)
    assert real == sum(p.numel() for p in model.parameters())  # parameters() dedups ties too
    full = shape_of(cfg.to_dict())
    diff = shape_of(json.loads(cfg.to_json_string(use_diff=True)))  # keys at defaults left out
    assert (full.params(), diff.params()) == (real, real)
    assert full == diff
    # what bitsandbytes would quantize: the linear layers but the output head
    linear = sum(m.weight.numel() for name, m in model.named_modules()
                 if type(m).__name__ in ("Linear", "Conv1D") and not name.endswith("lm_head"))
    assert full.linear_params() == linear


def test_family_rules_read_from_the_config() -> None:
    neox = shape_of({"model_type": "gpt_neox", **NEOX})
    assert (neox.gated_mlp, neox.tied, neox.qkv_bias, neox.mlp_bias, neox.positions) == \
        (False, False, True, True, 0)
    opt = shape_of({"model_type": "opt", **OPT})
    assert opt.positions == 42 and opt.tied and opt.proj_dim == 0  # OPT's offset of 2
    gptj = shape_of({"model_type": "gptj", **GPT})
    assert (gptj.norms, gptj.head_bias, gptj.qkv_bias, gptj.positions) == (1, True, False, 0)
    assert shape_of({**LLAMA, "model_type": "qwen2"}).qkv_bias
    bare_gpt2 = shape_of({"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257})
    assert not bare_gpt2.gated_mlp and bare_gpt2.intermediate == 3072
    multimodal = shape_of({"torch_dtype": "bfloat16",
                           "text_config": {"model_type": "llama", **LLAMA}})
    assert multimodal.dtype == "bfloat16" and multimodal.hidden == 32


@pytest.mark.parametrize("config, message", [
    ({**LLAMA, "num_local_experts": 8}, "mixture of experts (8 experts"),
    ({**LLAMA, "model_type": "qwen3_moe", "num_experts": 4}, "mixture of experts"),
    ({k: v for k, v in LLAMA.items() if k != "vocab_size"}, "no vocab_size"),
    ({k: v for k, v in LLAMA.items() if k != "intermediate_size"}, "no intermediate_size"),
    ({**GPT, "n_embd": None}, "no hidden_size (nor n_embd, d_model)"),
    ({**LLAMA, "hidden_size": "big"}, "hidden_size is 'big'"),
])
def test_unreadable_configs_say_why(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ShapeError, match=re.escape(message)):
        shape_of(config)
    assert estimate_flops(config, [(1, 1)]) is None


def test_flops_of_a_plain_mlp_family_by_hand() -> None:
    """GPT-NeoX: fused qkv and dense (4 hidden^2 with one KV head per head) and a 2-matrix
    MLP; biases, norms and the embedding lookup are left out of the count."""
    cfg = {"model_type": "gpt_neox", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 2}
    shape = shape_of(cfg)
    assert shape == Shape(hidden=8, layers=2, heads=2, kv_heads=2, head_dim=4, intermediate=32,
                          vocab=10, gated_mlp=False, qkv_bias=True, o_bias=True,
                          mlp_bias=True, norm_params=2)
    # per layer: q, k, v, o 4 x 8 x 8 = 256; MLP 2 x 8 x 32 = 512 -> 768; 2 layers -> 1536
    assert shape.linear_params() == 1536
    # 3 prompt tokens, 2 generated: 4 positions fed; logits twice; attention over p = 1..4
    linear = 2 * 1536 * 4  # 12288
    logits = 2 * 8 * 10 * 2  # 320
    attention = 4 * 2 * 2 * 4 * (1 + 2 + 3 + 4)  # 640
    assert request_flops(shape, 3, 2) == linear + logits + attention == 13248
    assert estimate_flops(cfg, [(3, 2)]) == 13248
    # the same sizes read as a gated Llama MLP would count 3 matrices: 256 more per layer
    llama = shape_of({**cfg, "model_type": "llama"})
    assert llama.linear_params() == 1536 + 2 * 256


def test_kv_bytes_follow_kv_heads() -> None:
    bigcode = shape_of({"model_type": "gpt_bigcode", **GPT})
    assert bigcode.kv_heads == 1 and bigcode.kv_bytes_per_token(2) == 2 * 2 * 1 * 8 * 2
    llama = shape_of(LLAMA)
    assert llama.kv_bytes_per_token(4) == 2 * 2 * 2 * 8 * 4
