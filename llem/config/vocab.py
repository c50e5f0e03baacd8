"""The values some config fields take by name: dtypes (and the aliases users type) and the
decoding presets (llem.config.models validates with them; the CLI offers them)."""

from __future__ import annotations

from typing import Any

DTYPES = ("auto", "float32", "float16", "bfloat16")
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16",
                 "float": "float32"}
# Named decoding presets: the sampling fields they set; a value written beside one wins.
PRESETS: dict[str, dict[str, Any]] = {
    "deterministic": {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0},
    "standard": {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.0},
    "creative": {"temperature": 1.0, "top_p": 0.95, "top_k": 0, "repetition_penalty": 1.1},
    "factual": {"temperature": 0.3, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.0},
}
