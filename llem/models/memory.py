"""GPU memory a job needs, estimated from the model's config.json before anything loads.

    weights  = parameters x bytes per parameter (dtype; bitsandbytes 4/8-bit on the linear
               layers, embeddings and norms stay in the compute dtype)
    KV cache = 2 (K and V) x layers x kv_heads x head_dim x bytes x batch x (input + output)

Parameters are counted from the config by llem.models.shape (the one reader of config.json,
shared with the FLOP count; its tests check each family's count against transformers' own
models): embeddings, attention (grouped-query aware), a gated or plain MLP, norms, biases, an
untied output head, learned positions. Activations, the CUDA context and allocator slack are
not included; a dry run says so. With tensor parallelism both terms split over the job's GPUs.
The config is read from a local folder, the llem:<name> build in the cache (or its recipe
when not built yet), or the Hugging Face cache / hub; without one the estimate is None with
the reason.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem.models.builtin import PREFIX, build_dir, is_builtin, recipe_config
from llem.models.shape import Shape

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GIB = 2**30


def read_config(model: str) -> tuple[dict[str, Any] | None, str | None]:
    """The model's config.json as a dict, or (None, why not). Never downloads weights."""
    if is_builtin(model):
        return _builtin_config(model.removeprefix(PREFIX)), None
    path = Path(model).expanduser()
    if path.is_dir():
        return _read_json(path / "config.json")
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        return None, "huggingface_hub is not installed"
    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):
        return _read_json(Path(cached))
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None, f"config of {model} is not in the Hugging Face cache (HF_HUB_OFFLINE=1)"
    try:
        return _read_json(Path(hf_hub_download(model, "config.json")))
    except Exception as exc:
        return None, f"cannot fetch config of {model}: {type(exc).__name__} (offline, gated " \
                     "or not a hub id?)"


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    return (data, None) if isinstance(data, dict) else (None, f"{path} is not a JSON map")


def _builtin_config(name: str) -> dict[str, Any]:
    """llem:<name>'s config.json when built, else its recipe's (llem.models.builtin)."""
    built = build_dir(PREFIX + name) / "config.json"
    if built.is_file():
        data, _ = _read_json(built)
        if data is not None:
            return data
    return recipe_config(name)


@dataclass(frozen=True)
class Estimate:
    """Bytes per GPU of one job."""

    params: int
    weights_bytes: float
    kv_bytes: float
    tokens: int  # batch x (input + output) tokens the KV cache holds at its largest
    dtype: str

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_bytes


def estimate(shape: Shape, *, dtype: str, batch_size: int, input_tokens: int,
             output_tokens: int, gpus: int = 1, quantization: str | None = None) -> Estimate:
    """Per-GPU bytes of a job: dtype 'auto' is the checkpoint's (float32 when unset);
    quantization is None, 'bnb-4bit' or 'bnb-8bit'."""
    real = shape.dtype if dtype == "auto" else dtype
    real = real if real in BYTES else "float32"
    b = BYTES[real]
    linear = shape.linear_params()
    rest = shape.embedding_params() + shape.other_params()
    per_linear = {"bnb-4bit": 0.5, "bnb-8bit": 1.0}.get(quantization or "", b)
    weights = linear * per_linear + rest * b
    tokens = batch_size * (input_tokens + output_tokens)
    kv = shape.kv_bytes_per_token(b) * tokens
    split = max(gpus, 1)
    return Estimate(shape.params(), weights / split, kv / split, tokens, real)


def human(n: float) -> str:
    """Bytes as GiB (or MiB below 1 GiB), two decimals."""
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / 2**20:.2f} MiB"


def tokenizer_file(model: str) -> Path | None:
    """The model's tokenizer.json when it is on this machine (a folder, a built llem:<name>,
    or the Hugging Face cache); never downloads."""
    if is_builtin(model):
        path = build_dir(model) / "tokenizer.json"
    elif Path(model).expanduser().is_dir():
        path = Path(model).expanduser() / "tokenizer.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        cached = try_to_load_from_cache(model, "tokenizer.json")
        return Path(cached) if isinstance(cached, str) else None
    return path if path.is_file() else None


def count_tokens(model: str, prompts: list[str]) -> list[int] | None:
    """Each prompt's token count with the model's own tokenizer (special tokens included),
    or None when its tokenizer.json is not on this machine or cannot be read."""
    path = tokenizer_file(model)
    if path is None:
        return None
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        return [len(e.ids) for e in tok.encode_batch(prompts)]
    except Exception:  # a tokenizer.json this tokenizers version cannot read
        return None


def input_tokens_bound(max_input_tokens: int | None, prompts: list[str] | None,
                       counts: list[int] | None = None) -> tuple[int | None, bool]:
    """(the longest input a job sends, exact?): the longest prompt in the model's own tokens
    (counts) capped at max_input_tokens; max_input_tokens when counts are unknown; else the
    longest prompt at 3 characters per token (a generous bound for BPE vocabularies on
    English text)."""
    if counts:
        longest = max(counts)
        return (min(longest, max_input_tokens) if max_input_tokens else longest), True
    if max_input_tokens is not None:
        return max_input_tokens, True
    if not prompts:
        return None, False
    return math.ceil(max(len(p) for p in prompts) / 3), False
