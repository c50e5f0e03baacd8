"""A model's shape, read once from its config.json: the one reader FLOPs, memory and the
built-in models use.

shape_of() knows how each family builds its decoder (tests/unit/models/test_shape.py builds
each from a tiny config with transformers and compares the parameter count):

    llama, mistral      gated MLP (gate, up, down); RMSNorm; rotary; untied by default.
                        Llama's attention_bias puts biases on q, k, v and o, mlp_bias on
                        the MLP; Mistral has no biases.
    qwen2               as Llama, with biases on q, k and v (never on o).
    qwen3               as Llama, plus an RMSNorm on each head's q and k (head_dim 128
                        unless set); attention_bias as Llama's.
    gpt2, gpt_bigcode   n_embd keys; plain MLP (4 x hidden unless n_inner); biases on every
                        linear layer; LayerNorms with biases; learned positions (n_positions);
                        tied by default. gpt_bigcode: one K/V head when multi_query (default).
    gpt_neox            plain GELU MLP with biases; attention biases unless attention_bias is
                        false; LayerNorms with biases; rotary; untied by default.
    opt                 plain MLP (fc1, fc2, ffn_dim); biases on all linear layers unless
                        enable_bias is false; LayerNorms (no parameters when
                        layer_norm_elementwise_affine is false; no final one when
                        do_layer_norm_before is false); learned positions with OPT's offset of
                        2 rows; tied by default; word_embed_proj_dim other than hidden_size
                        sizes the embeddings and the head and adds project_in/out.
    gptj                n_embd keys; plain MLP with biases; attention without biases; one
                        LayerNorm per layer (attention and MLP run in parallel); rotary;
                        untied by default; a bias on the output head.

Any other model_type is read with Llama's rules (without a model_type: GPT-2's when the
config has n_embd). A config without a size the count needs, or one describing a mixture of
experts (whose expert layouts differ by family), raises ShapeError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

GPT2_LIKE = ("gpt2", "gpt_bigcode")  # Conv1D / fused c_attn, learned positions
NON_GATED = (*GPT2_LIKE, "gpt_neox", "opt", "gptj")
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


class ShapeError(ValueError):
    """A config.json whose parameters this module cannot count: a size is missing, or it
    describes a mixture of experts. The message says which."""


@dataclass(frozen=True)
class Shape:
    """The dimensions of a decoder-only transformer, enough to count its parameters exactly.

    The defaults are Llama's: a gated MLP, RMSNorms, no biases, rotary positions."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    gated_mlp: bool = True  # gate, up and down (3 matrices); else in and out (2)
    tied: bool = False  # the output head shares the token embeddings' weights
    qkv_bias: bool = False  # biases on the q, k and v projections
    o_bias: bool = False  # a bias on the attention output projection
    mlp_bias: bool = False  # biases on the MLP projections
    norm_params: int = 1  # parameters per norm and hidden unit: RMSNorm 1, LayerNorm 2, 0
    norms: int = 2  # norms per layer (GPT-J: 1)
    final_norm: bool = True  # a norm after the last layer (OPT-350m has none)
    qk_norm: bool = False  # Qwen3: an RMSNorm on each head's q and k
    positions: int = 0  # rows of learned position embeddings; 0 for rotary models
    proj_dim: int = 0  # OPT: word_embed_proj_dim where it differs from hidden, else 0
    head_bias: bool = False  # GPT-J: a bias on the output head
    dtype: str | None = None  # the checkpoint's dtype (config torch_dtype / dtype)

    @property
    def embed_dim(self) -> int:
        """The width of the token embeddings and of the output head's input."""
        return self.proj_dim or self.hidden

    def linear_params(self) -> int:
        """The weight matrices applied to every token between the embeddings and the output
        head: attention and MLP of all layers, plus OPT's project_in/out. This is the
        multiply-adds per token FLOPs count, and what bitsandbytes quantizes."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        attention = self.hidden * q + 2 * self.hidden * kv + q * self.hidden
        mlp = (3 if self.gated_mlp else 2) * self.hidden * self.intermediate
        return self.layers * (attention + mlp) + 2 * self.proj_dim * self.hidden

    def embedding_params(self) -> int:
        """Token embeddings, the output head's weights unless tied, learned positions."""
        tokens = self.vocab * self.embed_dim
        return tokens * (1 if self.tied else 2) + self.positions * self.hidden

    def other_params(self) -> int:
        """Norms, biases (the output head's included) and per-head q/k norms."""
        layer = self.norms * self.norm_params * self.hidden
        if self.qkv_bias:
            layer += (self.heads + 2 * self.kv_heads) * self.head_dim
        if self.o_bias:
            layer += self.hidden
        if self.mlp_bias:
            layer += (2 if self.gated_mlp else 1) * self.intermediate + self.hidden
        if self.qk_norm:
            layer += 2 * self.head_dim
        final = self.norm_params * self.hidden if self.final_norm else 0
        return self.layers * layer + final + (self.vocab if self.head_bias else 0)

    def params(self) -> int:
        """All parameters, each shared weight once."""
        return self.embedding_params() + self.linear_params() + self.other_params()

    def kv_bytes_per_token(self, dtype_bytes: float) -> float:
        """KV-cache bytes one token takes: K and V of every layer's kv_heads."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def shape_of(config: Mapping[str, Any]) -> Shape:
    """The Shape of a Hugging Face config.json dict (its text_config when it has one, as
    multimodal configs do). Raises ShapeError when a size is missing or the config describes
    a mixture of experts."""
    outer = config
    c: Mapping[str, Any] = config.get("text_config") or config
    experts = next((c[k] for k in EXPERT_KEYS if c.get(k)), 0)
    if experts:
        raise ShapeError(f"a mixture of experts ({experts} experts per layer): its "
                         "parameters and FLOPs are not counted")
    kind = str(c.get("model_type") or ("gpt2" if "n_embd" in c else "llama"))
    hidden = _size(c, "hidden_size", "n_embd", "d_model")
    heads = _size(c, "num_attention_heads", "n_head")
    if kind == "gpt_bigcode":
        kv_heads = 1 if _flag(c, "multi_query", True) else heads
    elif kind in NON_GATED:
        kv_heads = heads
    else:
        kv_heads = _size(c, "num_key_value_heads", default=heads)
    head_dim = _size(c, "head_dim", default=128 if kind == "qwen3" else hidden // heads)
    if kind in ("gpt2", "gpt_bigcode", "gptj"):
        inter = _size(c, "n_inner", default=4 * hidden)
    else:
        inter = _size(c, "ffn_dim" if kind == "opt" else "intermediate_size")
    shape = Shape(
        hidden=hidden, layers=_size(c, "num_hidden_layers", "n_layer"), heads=heads,
        kv_heads=kv_heads, head_dim=head_dim, intermediate=inter, vocab=_size(c, "vocab_size"),
        tied=_flag(c, "tie_word_embeddings", kind in (*GPT2_LIKE, "opt")),
        dtype=c.get("torch_dtype") or c.get("dtype") or outer.get("torch_dtype")
        or outer.get("dtype"))
    return _family(shape, kind, c)


def _family(s: Shape, kind: str, c: Mapping[str, Any]) -> Shape:
    """s with the biases, norms and positions of its family (see the module docstring);
    a key the config leaves out takes transformers' default for the family."""
    if kind in GPT2_LIKE:
        return replace(s, gated_mlp=False, qkv_bias=True, o_bias=True, mlp_bias=True,
                       norm_params=2, positions=_size(c, "n_positions", "max_position_embeddings",
                                                      default=1024))
    if kind == "gpt_neox":
        bias = _flag(c, "attention_bias", True)
        return replace(s, gated_mlp=False, qkv_bias=bias, o_bias=bias, mlp_bias=True,
                       norm_params=2)
    if kind == "gptj":
        return replace(s, gated_mlp=False, mlp_bias=True, norm_params=2, norms=1,
                       head_bias=True)
    if kind == "opt":
        bias = _flag(c, "enable_bias", True)
        proj = _size(c, "word_embed_proj_dim", default=s.hidden)
        return replace(s, gated_mlp=False, qkv_bias=bias, o_bias=bias, mlp_bias=bias,
                       norm_params=2 if _flag(c, "layer_norm_elementwise_affine", True) else 0,
                       final_norm=_flag(c, "do_layer_norm_before", True)
                       and not _flag(c, "_remove_final_layer_norm", False),
                       positions=_size(c, "max_position_embeddings", default=2048) + 2,
                       proj_dim=0 if proj == s.hidden else proj)
    if kind == "mistral":
        return s
    if kind.startswith("qwen2"):
        return replace(s, qkv_bias=True)
    bias = _flag(c, "attention_bias", False)  # llama, qwen3 and the rest
    return replace(s, qkv_bias=bias, o_bias=bias, mlp_bias=_flag(c, "mlp_bias", False),
                   qk_norm=kind.startswith("qwen3"))


def _flag(c: Mapping[str, Any], key: str, default: bool) -> bool:
    v = c.get(key)
    return default if v is None else bool(v)


def _size(c: Mapping[str, Any], *names: str, default: int | None = None) -> int:
    """The first of names set in c, as a positive int; default when none is; else
    ShapeError."""
    for n in names:
        v = c.get(n)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 1 or v != int(v):
                raise ShapeError(f"{n} is {v!r}, not a size")
            return int(v)
    if default is None:
        alt = f" (nor {', '.join(names[1:])})" if len(names) > 1 else ""
        raise ShapeError(f"no {names[0]}{alt}")
    return default
