"""The built-in models, named llem:<name>: random weights and a locally trained tokenizer,
built offline once into the cache (llem.models.tiny) and then read like any local folder.

This is the one place that names them, says where their builds live and what config.json a
build has before it exists (a dry run plans memory without building a 7B model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem.models.tiny import build_tiny_model
from llem.paths import cache_root

PREFIX = "llem:"
BUILD_VERSION = "v1"  # part of each build's folder name: bump when a build's bytes change

# Random-weight Llama models llem builds offline (llem.models.tiny), named llem:<name>.
BUILTIN_MODELS: dict[str, dict[str, Any]] = {
    "tiny": {},  # 2 layers, hidden 128: CPU demos and tests
    "random-0.8b": {"hidden_size": 2048, "num_layers": 16, "num_heads": 16,
                    "intermediate_size": 5632, "init_std": 0.02},  # loads a GPU
    # Llama-2-7B's shape (6.5B parameters without its 32k vocabulary), saved in bf16:
    # decoding at large batches is bound by the GPU, not by the host's kernel launches
    "random-7b": {"hidden_size": 4096, "num_layers": 32, "num_heads": 32,
                  "intermediate_size": 11008, "init_std": 0.02, "dtype": "bfloat16"},
}

# What build_tiny_model() uses for a field a recipe leaves out.
DEFAULTS: dict[str, Any] = {"hidden_size": 128, "num_layers": 2, "num_heads": 2,
                            "intermediate_size": 256, "vocab_size": 2048, "init_std": 0.2,
                            "dtype": "float32"}


def is_builtin(model: str) -> bool:
    return model.startswith(PREFIX)


def build_dir(model: str) -> Path:
    """The folder of llem:<name>'s build (it may not exist yet)."""
    return cache_root() / f"{model.removeprefix(PREFIX)}-{BUILD_VERSION}"


def resolve_model(model: str) -> str:
    """llem:<name> is built (once, offline, seeded) in the cache; anything else is passed on."""
    if not is_builtin(model):
        return model
    return str(build_tiny_model(build_dir(model), **BUILTIN_MODELS[model.removeprefix(PREFIX)]))


def recipe_config(name: str) -> dict[str, Any]:
    """llem:<name>'s config.json as its build will write it (vocabulary at its maximum)."""
    r = {**DEFAULTS, **BUILTIN_MODELS[name]}
    return {"model_type": "llama", "vocab_size": r["vocab_size"],
            "hidden_size": r["hidden_size"], "num_hidden_layers": r["num_layers"],
            "num_attention_heads": r["num_heads"], "num_key_value_heads": r["num_heads"],
            "intermediate_size": r["intermediate_size"], "tie_word_embeddings": False,
            "torch_dtype": r["dtype"]}
