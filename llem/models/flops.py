"""Forward-pass FLOPs of inference, estimated from a model's config. An estimate, labelled so.

Inference runs the forward pass only: about 2 FLOPs per weight per token (one multiply-add),
plus attention, whose cost grows with the context. (6·N·T is the training count, forward
plus backward; the predecessor used it for inference and overstated FLOPs threefold.)

For a request with n_in prompt tokens and n_out generated tokens, generate() runs the
forward pass over T = n_in + n_out - 1 token positions (the prompt, then every generated
token but the last, which is never fed back) and computes logits n_out times (HF computes
only the last position's logits in prefill). The token at position p (1-based) attends to p
keys: QK^T and AV cost 2·p·(heads·head_dim) multiply-adds per layer. So

    FLOPs = 2·N_linear·T + 2·d·vocab·n_out + 4·layers·heads·head_dim·T(T+1)/2

where N_linear is the weights of the attention and MLP matrices of all layers (three MLP
matrices for gated families such as Llama, two for GPT-2, GPT-NeoX, OPT and GPT-J; OPT's
project_in/out too) and d the output head's input width (hidden, or OPT's
word_embed_proj_dim): Shape.linear_params() and Shape.embed_dim of llem.models.shape, the one
reader of config.json. Left out (each well under 1% for models of interest): embeddings
lookup, norms, biases, rotary, softmax, residual adds and padding tokens. A config shape_of()
cannot read (a size missing, or a mixture of experts) gives None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llem.models.shape import Shape, ShapeError, shape_of


def request_flops(shape: Shape, n_in: int, n_out: int) -> float:
    """Forward FLOPs of one request of n_in prompt and n_out generated tokens (see the module
    docstring)."""
    if n_in < 0 or n_out < 0:
        raise ValueError("token counts must be >= 0")
    t = n_in + max(n_out - 1, 0)
    linear = 2 * shape.linear_params() * t
    logits = 2 * shape.embed_dim * shape.vocab * n_out
    attention = 4 * shape.layers * shape.heads * shape.head_dim * t * (t + 1) // 2
    return float(linear + logits + attention)


def estimate_flops(config: Mapping[str, Any] | None,
                   requests: Iterable[tuple[int, int]]) -> float | None:
    """Total forward FLOPs of (input_tokens, output_tokens) requests; None without a config
    or when shape_of() cannot read it (a size missing, a mixture of experts)."""
    if not config:
        return None
    try:
        shape = shape_of(config)
    except ShapeError:
        return None
    return sum(request_flops(shape, i, o) for i, o in requests)
