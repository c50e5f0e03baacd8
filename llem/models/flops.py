"""Forward-pass FLOPs of inference, estimated from a model's config. An estimate, labelled so.

Inference runs the forward pass only: about 2 FLOPs per weight per token (one multiply-add),
plus attention, whose cost grows with the context. (6·N·T is the training count, forward
plus backward; the predecessor used it for inference and overstated FLOPs threefold.)

For a request with n_in prompt tokens and n_out generated tokens, generate() runs the
forward pass over T = n_in + n_out - 1 token positions (the prompt, then every generated
token but the last, which is never fed back) and computes logits n_out times (HF computes
only the last position's logits in prefill). The token at position p (1-based) attends to p
keys: QK^T and AV cost 2·p·(heads·head_dim) multiply-adds per layer. So

    FLOPs = 2·N_layers·T + 2·hidden·vocab·n_out + 4·layers·heads·head_dim·T(T+1)/2

where N_layers is the weights of the attention and MLP matrices of all layers. Left out (each
well under 1% for models of interest): embeddings lookup, norms, rotary, softmax, residual
adds, padding tokens, and mixture-of-experts routing (MoE configs return None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    """The dimensions of a decoder-only transformer that the FLOP count needs."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    gated_mlp: bool = True  # Llama/Mistral/Qwen: gate, up, down (3 matrices); GPT-2: 2

    @property
    def layer_weights(self) -> int:
        """Multiply-adds per token in all layers' matrices (= their weight count)."""
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        mlp = (3 if self.gated_mlp else 2) * self.hidden * self.intermediate
        return self.layers * (q + kv + o + mlp)

    def request_flops(self, n_in: int, n_out: int) -> float:
        """Forward FLOPs of one request (see the module docstring)."""
        if n_in < 0 or n_out < 0:
            raise ValueError("token counts must be >= 0")
        t = n_in + max(n_out - 1, 0)
        linear = 2 * self.layer_weights * t
        logits = 2 * self.hidden * self.vocab * n_out
        attention = 4 * self.layers * self.heads * self.head_dim * t * (t + 1) // 2
        return float(linear + logits + attention)


def shape_of(config: Mapping[str, Any]) -> Shape | None:
    """A Shape from a HF config dict (Llama-style or GPT-2-style keys); None when the config
    lacks a dimension or describes a mixture of experts."""
    c = dict(config.get("text_config") or config)
    if any(c.get(k) for k in ("num_local_experts", "num_experts", "n_routed_experts")):
        return None
    hidden = c.get("hidden_size") or c.get("n_embd")
    layers = c.get("num_hidden_layers") or c.get("n_layer")
    heads = c.get("num_attention_heads") or c.get("n_head")
    vocab = c.get("vocab_size")
    if not (hidden and layers and heads and vocab):
        return None
    gpt2 = "n_embd" in c and "hidden_size" not in c
    inter = c.get("intermediate_size") or c.get("n_inner") or 4 * hidden
    return Shape(hidden=int(hidden), layers=int(layers), heads=int(heads),
                 kv_heads=int(c.get("num_key_value_heads") or heads),
                 head_dim=int(c.get("head_dim") or hidden // heads),
                 intermediate=int(inter), vocab=int(vocab), gated_mlp=not gpt2)


def estimate_flops(config: Mapping[str, Any] | None,
                   requests: Iterable[tuple[int, int]]) -> float | None:
    """Total forward FLOPs of (input_tokens, output_tokens) requests; None without a shape."""
    shape = shape_of(config) if config else None
    if shape is None:
        return None
    return sum(shape.request_flops(i, o) for i, o in requests)
